"""Live tabular progress over the image runs' WebSocket (ws/modelops/tabular/<id>/): admins only,
a snapshot on connect, then every progress event the worker's heartbeat publishes."""

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.jobs.models import JobStatus
from apps.jobs.services import finish_job, heartbeat_job
from deepmed_web.routing import websocket_urlpatterns
from tests.factories import PatientFactory, PhysicianFactory, TabularExperimentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(path, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


@database_sync_to_async
def _running_experiment():
    return TabularExperimentFactory(
        status=JobStatus.RUNNING,
        registered=False,
        result={},
        chosen_algorithm="",
        config={"target": "target", "scoring": "roc_auc", "algorithms": ["logistic_regression", "svm"]},
    )


async def test_admin_follows_an_experiment_live(admin_user):
    experiment = await _running_experiment()
    communicator = _communicator(f"/ws/modelops/tabular/{experiment.pk}/", admin_user)
    assert (await communicator.connect())[0]
    snapshot = (await communicator.receive_json_from(timeout=5))["job"]
    assert snapshot["id"] == experiment.pk and snapshot["status"] == "running" and snapshot["finished"] is False
    assert snapshot["text"] == "Starting: reading and splitting the table…"

    # What execute_experiment's progress callback does for each fold.
    event = {"event": "fold", "algorithm": "svm", "grid_point": 2, "grid_points": 4, "folds_done": 1, "folds": 3}
    await database_sync_to_async(heartbeat_job)(experiment, progress=event)
    job = (await communicator.receive_json_from(timeout=5))["job"]
    assert job["progress"] == event
    assert job["text"] == "Support vector machine (algorithm 2 of 2): grid point 2 of 4, 1 of 3 folds done"
    assert job["fraction"] == pytest.approx((1 + 4 / 12) / 2, abs=1e-4)

    await database_sync_to_async(finish_job)(experiment)
    job = (await communicator.receive_json_from(timeout=5))["job"]
    assert job["status"] == "succeeded" and job["finished"] is True and job["fraction"] == 1.0
    await communicator.disconnect()


@pytest.mark.parametrize("user_factory", [PhysicianFactory, PatientFactory], ids=["physician", "patient"])
async def test_physicians_and_patients_are_refused(user_factory):
    user = await database_sync_to_async(user_factory)()
    experiment = await _running_experiment()
    communicator = _communicator(f"/ws/modelops/tabular/{experiment.pk}/", user)
    assert (await communicator.connect())[0]  # accepted, then closed with the code
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_anonymous_gets_4401_and_an_unknown_experiment_4403(admin_user):
    from django.contrib.auth.models import AnonymousUser

    experiment = await _running_experiment()
    for path, user, code in [
        (f"/ws/modelops/tabular/{experiment.pk}/", AnonymousUser(), 4401),
        (f"/ws/modelops/tabular/{experiment.pk + 1000}/", admin_user, 4403),
    ]:
        communicator = _communicator(path, user)
        assert (await communicator.connect())[0], path
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": code}, path
