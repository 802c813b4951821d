"""Reads for accounts."""

from __future__ import annotations

from apps.accounts import disclaimer as texts
from apps.accounts.models import Consent, ResearchConsent, User


def current_consent(user: User) -> Consent | None:
    """The user's acceptance of the current disclaimer version, if any."""
    return user.consents.filter(disclaimer_version=texts.CURRENT_VERSION).order_by("-accepted_at").first()


# has_current_consent's memo on a user object (a request's request.user): the disclaimer version it
# saw accepted. An acceptance is never withdrawn, and one upload asks three times (the view before
# reading the body, the intake, the service), each a query.
_CONSENT_MEMO = "_deepmed_accepted_disclaimer"


def has_current_consent(user: User) -> bool:
    if getattr(user, _CONSENT_MEMO, None) == texts.CURRENT_VERSION:
        return True
    accepted = Consent.objects.filter(user=user, disclaimer_version=texts.CURRENT_VERSION).exists()
    if accepted:
        setattr(user, _CONSENT_MEMO, texts.CURRENT_VERSION)
    return accepted


def latest_research_decision(user: User) -> ResearchConsent | None:
    return ResearchConsent.objects.filter(user=user).order_by("-decided_at", "-id").first()


def has_research_consent(user: User) -> bool:
    """True only if the patient's latest decision grants the CURRENT research text."""
    decision = latest_research_decision(user)
    return bool(decision and decision.granted and decision.version == texts.CURRENT_RESEARCH_VERSION)
