"""WebSocket consumers for live study status (browsers: session; apps: JWT, deepmed_web/ws_auth.py).

A refusal accepts the handshake and closes at once with a code the client can act on: 4401
(not authenticated: log in again / refresh the token) or 4403 (not yours, or no such study).
Closing before accepting would reach the client as a bare HTTP 403 that tells neither.

Every subscription is a read of patient data and is audited, allowed or refused: `study.subscribe`
(one study) and `study.subscribe_list` (one's own studies, or the worklist for clinical staff).
Anonymous handshakes are refused by `close_codes` before a consumer exists; it calls the
consumer's `audit_anonymous_refusal` for them."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.audit.models import Outcome
from apps.audit.services import FIND_PATIENT, patient_of, record_event
from apps.studies import events
from apps.studies.models import Study
from apps.studies.selectors import can_view_study
from deepmed_web.ws_auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED

_REASONS = {CLOSE_UNAUTHENTICATED: "not_authenticated", CLOSE_FORBIDDEN: "forbidden"}


async def refuse(consumer, code: int) -> None:
    """Accept, then close with `code` (see the module docstring)."""
    await consumer.accept()
    await consumer.close(code=code)


def record_subscription(
    scope,
    action: str,
    *,
    study_id: str = "",
    close_code: int | None = None,
    detail: dict | None = None,
    patient=FIND_PATIENT,
) -> None:
    """One audit event per handshake; refused when `close_code` is given. The patient is the
    study's owner unless given."""
    user = scope.get("user")
    client = scope.get("client") or (None, None)
    outcome = Outcome.DENIED if close_code is not None else Outcome.ALLOWED
    refusal = {"close_code": close_code, "reason": _REASONS.get(close_code, "refused")} if close_code else {}
    record_event(
        actor=user,
        action=action,
        object_type="studies.study",
        object_id=str(study_id),
        ip_address=client[0],
        outcome=outcome,
        detail={"channel": "websocket", "path": scope.get("path", ""), **refusal, **(detail or {})},
        patient=patient,
    )


audit_subscription = database_sync_to_async(record_subscription)


@database_sync_to_async
def _snapshot_if_allowed(user, study_id) -> dict | None:
    study = Study.objects.filter(pk=study_id).first()
    if study is None or not can_view_study(user, study):
        return None
    return events.study_status_payload(study)


def subscription_snapshot(scope, user, study_id) -> dict | None:
    """The study's status if `user` may follow it, else None; the subscription is audited either
    way. One trip to the database thread and one read of the study with its owner (the audited
    patient): separately, the check and the audit took two trips and three reads per handshake."""
    study = Study.objects.select_related("owner").filter(pk=study_id).first()
    allowed = study is not None and can_view_study(user, study)
    record_subscription(
        scope,
        "study.subscribe",
        study_id=study_id,
        close_code=None if allowed else CLOSE_FORBIDDEN,
        patient=patient_of(study) if study is not None else None,
    )
    return events.study_status_payload(study) if allowed else None


_subscribe = database_sync_to_async(subscription_snapshot)


class StudyStatusConsumer(AsyncJsonWebsocketConsumer):
    """Follows one study. Only its owner and clinical staff may subscribe."""

    @classmethod
    async def audit_anonymous_refusal(cls, scope, code: int) -> None:
        await audit_subscription(
            scope, "study.subscribe", study_id=scope["url_route"]["kwargs"]["study_id"], close_code=code
        )

    async def connect(self):
        user = self.scope.get("user")
        study_id = self.scope["url_route"]["kwargs"]["study_id"]
        if user is None or not user.is_authenticated:
            await self.audit_anonymous_refusal(self.scope, CLOSE_UNAUTHENTICATED)
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        snapshot = await _subscribe(self.scope, user, study_id)
        if snapshot is None:
            await refuse(self, CLOSE_FORBIDDEN)
            return
        self.group = events.study_group(study_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Read again once in the group: a change published between the first read and joining
        # (a quick explanation right after the page loaded) would otherwise never reach the page.
        snapshot = await _snapshot_if_allowed(user, study_id) or snapshot
        await self.send_json({"type": "study.status", **snapshot})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def study_status(self, event):
        await self.send_json(event)


class UserStudiesConsumer(AsyncJsonWebsocketConsumer):
    """Follows all of the user's own studies; clinical staff follow the worklist."""

    @classmethod
    async def audit_anonymous_refusal(cls, scope, code: int) -> None:
        await audit_subscription(scope, "study.subscribe_list", close_code=code, patient=None)

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.audit_anonymous_refusal(self.scope, CLOSE_UNAUTHENTICATED)
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        staff = user.is_clinical_staff
        # A patient's list is their own data; the worklist shows every waiting patient's status.
        await audit_subscription(
            self.scope,
            "study.subscribe_list",
            detail={"group": "worklist" if staff else "own"},
            patient=None if staff else user,
        )
        self.group = events.WORKLIST_GROUP if staff else events.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def study_status(self, event):
        await self.send_json(event)
