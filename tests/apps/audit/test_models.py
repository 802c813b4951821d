import pytest

from apps.audit.models import AuditEvent
from apps.audit.services import record_event


def test_audit_events_are_append_only(patient):
    event = record_event(actor=patient, action="study.read", object_type="studies.study", object_id="x")
    assert event.actor_username == "alice"
    event.action = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "study.read"


def test_admin_cannot_change_or_delete_audit_events(admin_client, patient):
    event = record_event(actor=patient, action="study.read", object_type="studies.study", object_id="x")
    assert admin_client.get("/admin/audit/auditevent/").status_code == 200
    assert admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_trail_survives_the_actor_being_deleted(patient):
    event = record_event(actor=patient, action="study.read", object_type="studies.study", object_id="x")
    patient.delete()
    event.refresh_from_db()
    assert event.actor is None and event.actor_username == "alice"
