"""WebSocket consumers for live study status (browsers: session; apps: JWT, deepmed_web/ws_auth.py).

A refusal accepts the handshake and closes at once with a code the client can act on: 4401
(not authenticated: log in again / refresh the token) or 4403 (not yours, or no such study).
Closing before accepting would reach the client as a bare HTTP 403 that tells neither."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.studies import events
from apps.studies.models import Study
from apps.studies.selectors import can_view_study
from deepmed_web.ws_auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED


async def refuse(consumer, code: int) -> None:
    """Accept, then close with `code` (see the module docstring)."""
    await consumer.accept()
    await consumer.close(code=code)


@database_sync_to_async
def _snapshot_if_allowed(user, study_id) -> dict | None:
    study = Study.objects.filter(pk=study_id).first()
    if study is None or not can_view_study(user, study):
        return None
    return events.study_status_payload(study)


class StudyStatusConsumer(AsyncJsonWebsocketConsumer):
    """Follows one study. Only its owner and clinical staff may subscribe."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        study_id = self.scope["url_route"]["kwargs"]["study_id"]
        snapshot = await _snapshot_if_allowed(user, study_id)
        if snapshot is None:
            await refuse(self, CLOSE_FORBIDDEN)
            return
        self.group = events.study_group(study_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "study.status", **snapshot})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def study_status(self, event):
        await self.send_json(event)


class UserStudiesConsumer(AsyncJsonWebsocketConsumer):
    """Follows all of the user's own studies; clinical staff follow the worklist."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        self.group = events.WORKLIST_GROUP if user.is_clinical_staff else events.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def study_status(self, event):
        await self.send_json(event)
