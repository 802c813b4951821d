"""Publishing a study's status from synchronous code: on the server's loop under the server, on
one long-lived loop of the process elsewhere (a worker's task)."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from apps.studies import events
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def loops_used(monkeypatch):
    loops = []
    original = events._send_to_groups

    async def recording(layer, groups, message):
        loops.append(asyncio.get_running_loop())
        await original(layer, groups, message)

    monkeypatch.setattr(events, "_send_to_groups", recording)
    return loops


def test_publishing_outside_the_server_reuses_one_event_loop(loops_used):
    """async_to_sync made a new loop (and thread) per publish, and channels-redis keeps its Redis
    connections per loop: each of a worker's publishes connected to Redis again."""
    study = StudyFactory(uploaded=True)
    events.publish_study_status(study)
    events.publish_study_status(study)
    worker_thread = threading.Thread(target=events.publish_study_status, args=(study,))
    worker_thread.start()
    worker_thread.join()
    assert len(loops_used) == 3
    assert loops_used[0] is loops_used[1] is loops_used[2]
    assert loops_used[0].is_running()


def test_publishing_under_the_server_uses_the_servers_loop(loops_used):
    study = StudyFactory(uploaded=True)

    async def server():
        await sync_to_async(events.publish_study_status)(study)  # a sync view under Daphne
        return asyncio.get_running_loop()

    server_loop = async_to_sync(server)()
    assert loops_used == [server_loop]


def test_a_published_status_reaches_the_studys_group():
    study = StudyFactory(uploaded=True)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.study_group(study.pk), channel)
    events.publish_study_status(study)
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "study.status"
    assert message["study_id"] == str(study.pk) and message["status"] == study.status


def test_an_event_asks_for_the_review_version_only_of_a_reviewed_study(reviewed_study, django_assert_num_queries):
    """Reviews exist only once a study is `reviewed`: the inference path's events (queued,
    predicting, predicted, failed) cost no query."""
    queued = StudyFactory()
    with django_assert_num_queries(0):
        assert events.study_status_payload(queued)["review_version"] is None
    with django_assert_num_queries(1):
        assert events.study_status_payload(reviewed_study)["review_version"] == 1


def test_the_groups_are_sent_to_at_once(monkeypatch):
    """Each group_send waits until all three have started: one after another, the first would
    wait for ever (here: time out), so the publish costs one round of Redis trips, not three."""
    study = StudyFactory(uploaded=True)
    started, everyone_in = [], asyncio.Event()

    class Layer:
        async def group_send(self, group, message):
            started.append(group)
            if len(started) == 3:
                everyone_in.set()
            await asyncio.wait_for(everyone_in.wait(), timeout=5)

    monkeypatch.setattr(events, "get_channel_layer", lambda: Layer())
    events.publish_study_status(study)
    assert sorted(started) == sorted(
        [events.study_group(study.pk), events.user_group(study.owner_id), events.WORKLIST_GROUP]
    )
