"""WebSocket consumers for live study status (session or, later, token auth)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.studies import events
from apps.studies.models import Study
from apps.studies.selectors import can_view_study

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


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
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        study_id = self.scope["url_route"]["kwargs"]["study_id"]
        snapshot = await _snapshot_if_allowed(user, study_id)
        if snapshot is None:
            await self.close(code=CLOSE_FORBIDDEN)
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
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = events.WORKLIST_GROUP if user.is_clinical_staff else events.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def study_status(self, event):
        await self.send_json(event)
