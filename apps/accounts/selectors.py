"""Reads for accounts."""

from __future__ import annotations

from apps.accounts.disclaimer import CURRENT_VERSION
from apps.accounts.models import Consent, User


def current_consent(user: User) -> Consent | None:
    """The user's acceptance of the current disclaimer version, if any."""
    return user.consents.filter(disclaimer_version=CURRENT_VERSION).order_by("-accepted_at").first()


def has_current_consent(user: User) -> bool:
    return Consent.objects.filter(user=user, disclaimer_version=CURRENT_VERSION).exists()
