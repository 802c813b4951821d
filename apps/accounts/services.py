"""Writes for accounts: user creation with roles, consent."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from apps.accounts.disclaimer import CURRENT_VERSION
from apps.accounts.models import Consent, Role, User
from apps.audit.services import record_event


@transaction.atomic
def create_user(
    *,
    username: str,
    password: str,
    role: str,
    email: str = "",
    validate: bool = True,
) -> User:
    """Create a user with a role; the role's group is attached and admins get staff access."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    if User.objects.filter(username=username).exists():
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, email=email, role=role)
    if validate:
        validate_password(password, user)
    user.set_password(password)
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.save()
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    record_event(actor=None, action="user.create", obj=user, detail={"role": role})
    return user


@transaction.atomic
def set_user_password(user: User, password: str) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])


def accept_disclaimer(
    user: User, *, ip_address: str | None = None, research_use: bool = False, version: str = CURRENT_VERSION
) -> Consent:
    consent = Consent.objects.create(
        user=user, disclaimer_version=version, ip_address=ip_address, research_use=research_use
    )
    record_event(
        actor=user,
        action="consent.accept",
        obj=consent,
        ip_address=ip_address,
        detail={"version": version, "research_use": research_use},
    )
    return consent
