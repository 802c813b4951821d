"""Live training progress over WebSockets: a group per run, admins only, snapshot on connect."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.jobs.selectors import stop_requested
from apps.modelops.models import TrainingRun
from apps.modelops.services.training import _progress_reporter, cancel_training_run
from deepmed_web.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(path, user):
    from channels.routing import URLRouter

    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


async def test_admin_follows_a_run_live(admin_user):
    run = await database_sync_to_async(TrainingRun.objects.create)(params={"tier": "quick"}, status="running")
    communicator = _communicator(f"/ws/modelops/training/{run.pk}/", admin_user)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["job"]["status"] == "running"
    report = _progress_reporter(run)
    await database_sync_to_async(report)({"phase": "step", "epoch": 1, "step": 1, "loss": 1.2})
    job = (await communicator.receive_json_from(timeout=5))["job"]
    assert job["progress"]["step"] == 1 and job["progress"].get("history", []) == []
    await database_sync_to_async(report)(
        {"phase": "epoch", "epoch": 1, "epochs": 3, "train_loss": 0.9, "val_accuracy": 0.5}
    )
    job = (await communicator.receive_json_from(timeout=5))["job"]
    assert job["progress"]["epoch"] == 1
    assert job["progress"]["history"] == [{"epoch": 1, "epochs": 3, "train_loss": 0.9, "val_accuracy": 0.5}]
    await communicator.disconnect()


async def test_cancel_is_seen_by_the_running_loop(admin_user):
    run = await database_sync_to_async(TrainingRun.objects.create)(params={}, status="running")
    assert not await database_sync_to_async(stop_requested)(run)
    await database_sync_to_async(cancel_training_run)(run, actor=admin_user)
    assert await database_sync_to_async(stop_requested)(run)


async def test_physician_cannot_follow(physician):
    run = await database_sync_to_async(TrainingRun.objects.create)(params={})
    communicator = _communicator(f"/ws/modelops/training/{run.pk}/", physician)
    connected, _ = await communicator.connect()
    assert connected  # accepted, then closed with the code (a refused handshake would be a bare HTTP 403)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_anonymous_gets_4401_and_an_unknown_job_4403(admin_user):
    from django.contrib.auth.models import AnonymousUser

    run = await database_sync_to_async(TrainingRun.objects.create)(params={})
    for path, user, code in [
        (f"/ws/modelops/training/{run.pk}/", AnonymousUser(), 4401),
        (f"/ws/modelops/training/{run.pk + 1000}/", admin_user, 4403),
        (f"/ws/modelops/unknown-kind/{run.pk}/", admin_user, 4403),
    ]:
        communicator = _communicator(path, user)
        assert (await communicator.connect())[0], path
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": code}, path
