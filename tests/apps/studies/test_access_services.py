"""Over a live server on PostgreSQL: a patient's read is audited; another patient is denied."""

import urllib.error
import urllib.request

import pytest

from apps.audit.models import AuditEvent, Outcome

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _get(base, path, client, user):
    client.force_login(user)
    request = urllib.request.Request(base + path, headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_patient_read_is_audited_and_other_patient_denied(client, queued_study, other_patient, live_server_process):
    status, body = _get(live_server_process, f"/studies/{queued_study.pk}/", client, queued_study.owner)
    assert status == 200 and b"not a diagnosis" in body
    status, _ = _get(live_server_process, f"/studies/{queued_study.pk}/image.png", client, other_patient)
    assert status == 404

    events = AuditEvent.objects.filter(object_id=str(queued_study.pk)).exclude(action="study.create")
    assert {(e.actor_username, e.action, e.outcome) for e in events} == {
        ("alice", "study.read", Outcome.ALLOWED),
        ("bob", "study.image", Outcome.DENIED),
    }
