"""Live progress of one background job (admins only): a training run, an augmentation job, or a
kind another app registers (`register_kind`: the tabular lab's experiments)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.modelops import events
from apps.modelops.models import AugmentationJob, TrainingRun

CLOSE_FORBIDDEN = 4403
_KINDS = {
    "training": (TrainingRun, events.training_payload),
    "augmentation": (AugmentationJob, events.augmentation_payload),
}


def register_kind(kind: str, model, payload) -> None:
    """Serve `ws/modelops/<kind>/<id>/` for another app's job model: `payload(job)` is the JSON the
    page draws, sent on connect and published with `events.publish(kind, ...)` on every change."""
    _KINDS[kind] = (model, payload)


@database_sync_to_async
def _snapshot(kind: str, job_id: int) -> dict | None:
    model, payload = _KINDS[kind]
    job = model.objects.filter(pk=job_id).first()
    return None if job is None else payload(job)


class JobProgressConsumer(AsyncJsonWebsocketConsumer):
    """Sends the job's current state on connect (a reloaded page redraws), then every update."""

    async def connect(self):
        user = self.scope.get("user")
        kind = self.scope["url_route"]["kwargs"]["kind"]
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        if user is None or not user.is_authenticated or getattr(user, "role", "") != "admin" or kind not in _KINDS:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        snapshot = await _snapshot(kind, job_id)
        if snapshot is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = events.job_group(kind, job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "job.update", "job": snapshot})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_update(self, event):
        await self.send_json(event)
