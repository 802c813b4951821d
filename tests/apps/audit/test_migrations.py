"""The backfill of AuditEvent.patient for events recorded before the field existed."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def test_old_study_events_get_their_patient(queued_study):
    from apps.audit.models import AuditEvent

    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:  # as recorded before 0002: no patient
        cursor.execute(f"UPDATE {table} SET patient_id = NULL, patient_username = ''")
    executor = MigrationExecutor(connection)
    executor.migrate([("audit", "0002_patient_and_outcomes")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("audit", "0003_backfill_patient")])
    event = AuditEvent.objects.get(action="study.create", object_id=str(queued_study.pk))
    assert event.patient_id == queued_study.owner_id and event.patient_username == "alice"
