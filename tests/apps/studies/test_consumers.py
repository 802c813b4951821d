"""WebSocket subscriptions (in-memory layer here; channels-redis in the services pass)."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.studies.models import StudyStatus
from apps.studies.services import transition_study
from deepmed_web.routing import websocket_urlpatterns


def _communicator(path, user):
    from channels.routing import URLRouter

    app = URLRouter(websocket_urlpatterns)
    communicator = WebsocketCommunicator(app, path)
    communicator.scope["user"] = user
    return communicator


pytestmark = pytest.mark.django_db(transaction=True)


async def test_owner_receives_snapshot_then_live_status(queued_study):
    owner = await database_sync_to_async(lambda: queued_study.owner)()
    communicator = _communicator(f"/ws/studies/{queued_study.pk}/", owner)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["status"] == "queued"
    await database_sync_to_async(transition_study)(queued_study, StudyStatus.PREDICTING)
    message = await communicator.receive_json_from(timeout=5)
    assert message["status"] == "predicting" and message["study_id"] == str(queued_study.pk)
    await communicator.disconnect()


async def _close_code(communicator) -> int:
    """Refusals accept the handshake and close at once, so apps see the code (4401/4403)."""
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


async def test_another_patient_cannot_subscribe(queued_study, other_patient):
    communicator = _communicator(f"/ws/studies/{queued_study.pk}/", other_patient)
    assert await _close_code(communicator) == 4403


async def test_an_unknown_study_is_not_yours_either(consenting_patient):
    import uuid

    communicator = _communicator(f"/ws/studies/{uuid.uuid4()}/", consenting_patient)
    assert await _close_code(communicator) == 4403


async def test_anonymous_cannot_subscribe(queued_study):
    from django.contrib.auth.models import AnonymousUser

    for path in (f"/ws/studies/{queued_study.pk}/", "/ws/studies/"):
        assert await _close_code(_communicator(path, AnonymousUser())) == 4401, path


async def test_physician_may_follow_a_study_and_the_worklist(queued_study, physician):
    communicator = _communicator(f"/ws/studies/{queued_study.pk}/", physician)
    connected, _ = await communicator.connect()
    assert connected
    worklist = _communicator("/ws/studies/", physician)
    assert (await worklist.connect())[0]
    await communicator.receive_json_from()
    await database_sync_to_async(transition_study)(queued_study, StudyStatus.PREDICTING)
    assert (await worklist.receive_json_from(timeout=5))["status"] == "predicting"
    await communicator.disconnect()
    await worklist.disconnect()


# --- every subscription is audited, allowed or refused (issue 17 s.3) --------------------------


@database_sync_to_async
def _subscriptions(**filters) -> list:
    from apps.audit.models import AuditEvent

    return list(
        AuditEvent.objects.filter(**filters).values(
            "action", "outcome", "actor_id", "object_id", "patient_id", "ip_address", "detail"
        )
    )


async def test_an_allowed_subscription_is_audited(queued_study, physician):
    communicator = _communicator(f"/ws/studies/{queued_study.pk}/", physician)
    communicator.scope["client"] = ("10.1.2.3", 50000)
    assert (await communicator.connect())[0]
    await communicator.disconnect()
    [event] = await _subscriptions(action="study.subscribe")
    assert event["outcome"] == "allowed" and event["actor_id"] == physician.pk
    assert event["object_id"] == str(queued_study.pk) and event["patient_id"] == queued_study.owner_id
    assert event["ip_address"] == "10.1.2.3" and event["detail"]["channel"] == "websocket"


async def test_refused_subscriptions_are_audited(queued_study, other_patient):
    import uuid

    from django.contrib.auth.models import AnonymousUser

    unknown = uuid.uuid4()
    assert await _close_code(_communicator(f"/ws/studies/{queued_study.pk}/", other_patient)) == 4403
    assert await _close_code(_communicator(f"/ws/studies/{unknown}/", other_patient)) == 4403
    assert await _close_code(_communicator(f"/ws/studies/{queued_study.pk}/", AnonymousUser())) == 4401
    events = await _subscriptions(action="study.subscribe")
    assert {(e["object_id"], e["actor_id"], e["outcome"], e["detail"]["close_code"]) for e in events} == {
        (str(queued_study.pk), other_patient.pk, "denied", 4403),
        (str(unknown), other_patient.pk, "denied", 4403),
        (str(queued_study.pk), None, "denied", 4401),
    }


async def test_list_subscriptions_are_audited(queued_study, physician):
    from django.contrib.auth.models import AnonymousUser

    owner = await database_sync_to_async(lambda: queued_study.owner)()
    for user in (owner, physician):
        communicator = _communicator("/ws/studies/", user)
        assert (await communicator.connect())[0]
        await communicator.disconnect()
    assert await _close_code(_communicator("/ws/studies/", AnonymousUser())) == 4401
    events = await _subscriptions(action="study.subscribe_list")
    assert {(e["actor_id"], e["outcome"], e["detail"].get("group"), e["patient_id"]) for e in events} == {
        (owner.pk, "allowed", "own", owner.pk),
        (physician.pk, "allowed", "worklist", None),
        (None, "denied", None, None),
    }


def test_a_subscription_is_checked_and_audited_with_one_read_of_the_study(
    queued_study, other_patient, django_assert_num_queries
):
    """The study with its owner (the audited patient) in one query, then the audit row: the check
    and the audit made three reads of the study and its owner in two trips to the database thread."""
    from apps.audit.models import AuditEvent
    from apps.studies.consumers import subscription_snapshot

    owner = queued_study.owner
    scope = {"user": owner, "client": ("127.0.0.1", 5000), "path": f"/ws/studies/{queued_study.pk}/"}
    with django_assert_num_queries(2):
        snapshot = subscription_snapshot(scope, owner, str(queued_study.pk))
    assert snapshot["status"] == "queued" and snapshot["study_id"] == str(queued_study.pk)
    with django_assert_num_queries(2):
        refused = subscription_snapshot({**scope, "user": other_patient}, other_patient, str(queued_study.pk))
    assert refused is None
    allowed, denied = AuditEvent.objects.filter(action="study.subscribe").order_by("pk")
    assert (allowed.outcome, allowed.actor, allowed.patient) == ("allowed", owner, owner)
    assert (denied.outcome, denied.actor, denied.patient) == ("denied", other_patient, owner)
    assert denied.detail["close_code"] == 4403 and allowed.object_id == denied.object_id == str(queued_study.pk)
