"""Receivers of other apps' signals (connected in apps.py): a user's studies follow the account."""

from __future__ import annotations

from apps.studies import services


def account_deleting(sender, user, ip_address: str | None = None, **kwargs) -> dict[str, int]:
    return {"studies_deleted": services.delete_studies_of(user, ip_address=ip_address)}
