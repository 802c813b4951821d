"""Name the patient on events recorded before AuditEvent.patient existed: events about a study
(by its id) get the study's owner. Events of studies already deleted stay without one."""

from django.db import migrations


def backfill(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    Study = apps.get_model("studies", "Study")
    owners = Study.objects.values_list("pk", "owner_id", "owner__username")
    for study_id, owner_id, username in owners.iterator(chunk_size=2000):
        # Historical models use a plain manager: this update is the migration's, not the app's.
        AuditEvent.objects.filter(object_type="studies.study", object_id=str(study_id), patient_id=None).update(
            patient_id=owner_id, patient_username=username
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_patient_and_outcomes"),
        ("studies", "0001_initial"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
