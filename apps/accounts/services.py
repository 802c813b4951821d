"""Writes for accounts: user creation with roles, patient sign-up, consents, account deletion."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts import disclaimer as texts
from apps.accounts import signals
from apps.accounts.models import Consent, ResearchConsent, Role, User
from apps.accounts.selectors import current_consent
from apps.accounts.usernames import clean_username
from apps.audit.services import record_event
from apps.core.errors import ApplicationError


class ConsentVersionError(ApplicationError):
    """The client agreed to a text that is not the current one (it must show the new text)."""

    code = "consent_version_mismatch"
    http_status = 409


class WrongPassword(ApplicationError):
    """The current password given to confirm a sensitive change is not the user's."""

    code = "wrong_password"
    http_status = 403


class AccountLocked(ApplicationError):
    """django-axes locked this username out from this client address after failed log-ins."""

    code = "account_locked"
    http_status = 429

    def __init__(self, message: str = "Too many failed log-ins: this account is locked for a while from your address."):
        super().__init__(message)


@transaction.atomic
def create_user(
    *,
    username: str,
    password: str,
    role: str,
    email: str = "",
    validate: bool = True,
) -> User:
    """Create a user with a role; the role's group is attached and admins get staff access.
    The username goes through accounts.usernames.clean_username (stored normalised): a refused
    one raises ValidationError({"username": [...]}), a weak password ValidationError([...])
    (only with `validate`), a taken username ValueError."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    try:
        username = clean_username(username)
    except ValidationError as exc:
        raise ValidationError({"username": exc.error_list}) from exc
    if User.objects.filter(username__iexact=username).exists():
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


def register_patient(*, username: str, password: str, email: str = "", ip_address: str | None = None) -> User:
    """Self sign-up: always a patient (physicians and admins are created by admins).
    Raises ValueError (username taken) or ValidationError (refused username: a dict keyed
    "username"; weak password: a list)."""
    user = create_user(username=username, password=password, role=Role.PATIENT, email=email, validate=True)
    record_event(actor=user, action="user.register", obj=user, ip_address=ip_address)
    return user


@transaction.atomic
def set_user_password(user: User, password: str) -> None:
    """Set a password (administrator reset, command line): the user's app sessions end too."""
    user.set_password(password)
    user.save(update_fields=["password"])
    revoke_api_tokens(user)


def change_password(user: User, *, old_password: str, new_password: str, ip_address: str | None = None) -> None:
    """The user changes their own password (web or API). Every API token they hold is revoked:
    refresh tokens are blacklisted, and access tokens stop matching the new password hash.
    Raises WrongPassword, or ValidationError for a weak new password."""
    if not user.check_password(old_password):
        raise WrongPassword("The current password is not correct.")
    validate_password(new_password, user)
    set_user_password(user, new_password)
    record_event(actor=user, action="auth.password_change", obj=user, ip_address=ip_address)


def clear_login_failures(request, username: str) -> int:
    """After a successful log-in that sent no `user_logged_in` signal (the API's token view):
    forget django-axes' failed attempts of this username from this client address, as axes does
    for a web log-in (AXES_RESET_ON_SUCCESS). Returns how many were forgotten. The signal itself
    is not sent: axes' handler would create a browser session for its access log."""
    from axes.helpers import get_client_ip_address
    from axes.utils import reset
    from django.conf import settings

    if not settings.AXES_RESET_ON_SUCCESS or not username:
        return 0
    return reset(ip=get_client_ip_address(request), username=username)


def revoke_api_tokens(user: User) -> int:
    """Blacklist every refresh token issued to `user` that is not blacklisted yet; returns how many."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    live = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    return len(BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in live]))


def log_out_api_token(refresh_token: str, *, ip_address: str | None = None) -> None:
    """An app signs out: its refresh token is blacklisted (its short-lived access token simply
    expires). Raises rest_framework_simplejwt's TokenError for an invalid or revoked token."""
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken(refresh_token)
    token.blacklist()
    user = User.objects.filter(pk=token.payload.get(api_settings.USER_ID_CLAIM)).first()
    record_event(actor=user, action="auth.logout", obj=user, ip_address=ip_address, detail={"channel": "api"})


def accept_disclaimer(user: User, *, ip_address: str | None = None, version: str | None = None) -> Consent:
    """Record acceptance of the current disclaimer (idempotent per version). `version` is what
    the client showed; accepting an outdated text is refused."""
    version = texts.CURRENT_VERSION if version is None else version
    if version != texts.CURRENT_VERSION:
        raise ConsentVersionError(
            f"disclaimer version {version!r} is not the current version {texts.CURRENT_VERSION!r}"
        )
    existing = current_consent(user)
    if existing is not None:
        return existing
    consent = Consent.objects.create(user=user, disclaimer_version=version, ip_address=ip_address)
    record_event(actor=user, action="consent.accept", obj=consent, ip_address=ip_address, detail={"version": version})
    return consent


def decide_research_use(
    user: User, *, granted: bool, ip_address: str | None = None, version: str | None = None
) -> ResearchConsent:
    """Record an explicit grant or withdrawal of research use (a new row each time: history)."""
    version = texts.CURRENT_RESEARCH_VERSION if version is None else version
    if version != texts.CURRENT_RESEARCH_VERSION:
        raise ConsentVersionError(
            f"research consent version {version!r} is not the current version {texts.CURRENT_RESEARCH_VERSION!r}"
        )
    decision = ResearchConsent.objects.create(user=user, version=version, granted=granted, ip_address=ip_address)
    record_event(
        actor=user,
        action="consent.research.grant" if granted else "consent.research.withdraw",
        obj=decision,
        ip_address=ip_address,
        detail={"version": version},
    )
    return decision


def delete_account(user: User, *, ip_address: str | None = None) -> None:
    """ "Delete my account and data": each app deletes the user's data by its own rules first
    (signals.account_deleting; apps.studies: every study through the study deletion rules, files
    removed, training exclusion unless research consent), then the user row goes.
    The audit trail keeps the username; the events' actor link becomes empty."""
    deleted: dict = {}
    for _, details in signals.account_deleting.send(sender=User, user=user, ip_address=ip_address):
        deleted.update(details or {})
    with transaction.atomic():
        record_event(
            actor=user,
            action="account.delete",
            obj=user,
            ip_address=ip_address,
            detail={"role": user.role, **deleted},
        )
        user.delete()
