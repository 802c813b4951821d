"""The audit service: who the event is about, and the retention of the trail."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import purge_expired_events, record_event

pytestmark = pytest.mark.django_db


def _aged(event: AuditEvent, days: float) -> AuditEvent:
    # `at` is auto_now_add and the ORM refuses updates of events: age the row in SQL.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET at = %s WHERE id = %s",
            [timezone.now() - timezone.timedelta(days=days), event.pk],
        )
    return event


def test_events_about_a_study_or_what_hangs_off_it_name_its_patient(queued_study, physician):
    from apps.review.models import Review

    on_study = record_event(actor=physician, action="x", obj=queued_study)
    review = Review.objects.create(study=queued_study, physician=physician, decision="confirm", final_label="NORMAL")
    on_review = record_event(actor=physician, action="x", obj=review)
    by_id = record_event(actor=physician, action="x", object_type="studies.study", object_id=str(queued_study.pk))
    for event in (on_study, on_review, by_id):
        assert event.patient == queued_study.owner and event.patient_username == "alice"
    assert (
        record_event(actor=physician, action="x", object_type="studies.study", object_id="not-a-uuid").patient is None
    )
    assert record_event(actor=None, action="x", obj=physician).patient is None  # staff are no patients
    assert record_event(actor=None, action="x", obj=queued_study.owner).patient == queued_study.owner


def test_an_object_named_by_type_and_id_is_read_with_its_patient_in_one_query(
    queued_study, physician, django_assert_num_queries
):
    """The middleware audits a read by the id in the URL: the object and the patient it belongs
    to are one query (then the insert), where following the owner took a second."""
    from apps.review.models import Review

    review = Review.objects.create(study=queued_study, physician=physician, decision="confirm", final_label="NORMAL")
    for object_type, object_id in (("studies.study", queued_study.pk), ("review.review", review.pk)):
        with django_assert_num_queries(2):
            event = record_event(actor=physician, action="x", object_type=object_type, object_id=str(object_id))
        assert event.patient == queued_study.owner


def test_retention_deletes_only_events_older_than_the_setting(patient, settings):
    settings.DEEPMED_AUDIT_RETENTION_DAYS = 30
    old = _aged(record_event(actor=patient, action="study.read"), days=31)
    recent = _aged(record_event(actor=patient, action="study.read"), days=29)
    assert purge_expired_events() == 1
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    purge = AuditEvent.objects.get(action="audit.retention")  # the purge itself is on record
    assert purge.detail["deleted"] == 1 and purge.detail["retention_days"] == 30


def test_retention_zero_keeps_everything(patient, settings):
    settings.DEEPMED_AUDIT_RETENTION_DAYS = 0
    old = _aged(record_event(actor=patient, action="study.read"), days=10_000)
    assert purge_expired_events() == 0
    assert AuditEvent.objects.filter(pk=old.pk).exists()


def test_events_still_cannot_be_deleted_any_other_way(patient):
    record_event(actor=patient, action="study.read")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


def test_the_retention_task_is_scheduled_and_calls_the_service(monkeypatch):
    from deepmed_web.embedded import beat_entries
    from workers.maintenance import purge_audit_events

    assert "workers.maintenance.purge_audit_events" in {task for _, _, task in beat_entries()}
    monkeypatch.setattr("apps.audit.services.purge_expired_events", lambda: 7)
    assert purge_audit_events.run() == 7
