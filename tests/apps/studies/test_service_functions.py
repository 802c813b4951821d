import io

import pytest
from PIL import Image

from apps.audit.models import AuditEvent
from apps.studies.models import Study, StudyStatus
from apps.studies.services import StudyIntakeError, create_study


def test_upload_without_current_consent_is_refused(patient, xray_png):
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=patient, data=xray_png)
    assert exc.value.code == "consent_required"
    assert not Study.objects.exists()


def test_upload_creates_queued_study_with_deidentified_png(
    consenting_patient, xray_png, django_capture_on_commit_callbacks, monkeypatch
):
    enqueued = []
    monkeypatch.setattr("apps.studies.services.enqueue_inference", enqueued.append)
    with django_capture_on_commit_callbacks(execute=True):
        study = create_study(owner=consenting_patient, data=xray_png, patient_age=54, symptoms="cough")
    study.refresh_from_db()
    assert study.status == StudyStatus.QUEUED
    assert enqueued == [study.pk]
    assert study.original_format == "png" and len(study.sha256) == 64
    assert str(study.id) in study.image.name and "alice" not in study.image.name
    with study.image.open("rb") as fh:
        assert Image.open(io.BytesIO(fh.read())).mode == "L"
    assert AuditEvent.objects.filter(action="study.create", object_id=str(study.pk)).exists()


def test_an_upload_is_stored_queued_and_announced_in_few_statements(
    consenting_patient, xray_png, django_capture_on_commit_callbacks, django_assert_max_num_queries, monkeypatch
):
    """The new row moves to `queued` with one UPDATE (no one else can see it before the commit: no
    row lock or savepoint), and its event asks no review version (there is none before `reviewed`)."""
    from apps.accounts.selectors import has_current_consent
    from apps.studies import events

    has_current_consent(consenting_patient)  # asked by the view before the body: kept on the user
    enqueued, published = [], []
    monkeypatch.setattr("apps.studies.services.enqueue_inference", enqueued.append)
    monkeypatch.setattr(events, "publish_study_status", lambda s: published.append(events.study_status_payload(s)))
    # duplicate check, savepoint, insert, audit, update, release (was 10 with the event's query)
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(6):
        study = create_study(owner=consenting_patient, data=xray_png)
    assert [p["status"] for p in published] == ["queued"] and published[0]["review_version"] is None
    assert enqueued == [study.pk]
    stored = Study.objects.get(pk=study.pk)
    assert stored.status == study.status == StudyStatus.QUEUED
    assert stored.created_at <= stored.queued_at == study.queued_at and stored.updated_at == study.updated_at


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", "empty_file"),
        (b"%PDF-1.7 not an image", "unsupported_file_type"),
        (b"GIF89a" + b"\0" * 100, "unsupported_file_type"),
    ],
)
def test_bad_files_are_refused_with_a_code_and_leave_nothing(consenting_patient, _isolated_media, data, code):
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=data)
    assert exc.value.code == code
    assert not Study.objects.exists()
    assert not any(p.is_file() for p in _isolated_media.rglob("*")) if _isolated_media.exists() else True


def test_truncated_png_is_refused(consenting_patient, xray_png):
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=xray_png[: len(xray_png) // 2])
    assert exc.value.code == "corrupt_image"


def test_too_large_upload_is_refused(consenting_patient, xray_png, settings):
    settings.DEEPMED_MAX_UPLOAD_MB = 0
    settings.DEEPMED_MAX_UPLOAD_BYTES = 100
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=xray_png)
    assert exc.value.code == "file_too_large"


def test_dicom_patient_tags_never_reach_storage_or_the_record(consenting_patient, django_capture_on_commit_callbacks):
    import pydicom

    from ml_core.testing import make_dicom_bytes

    data = make_dicom_bytes(with_patient_tags=True)
    name = str(pydicom.dcmread(io.BytesIO(data)).PatientName)
    assert name and name.encode() in data  # the fixture really carries identity
    with django_capture_on_commit_callbacks(execute=False):
        study = create_study(owner=consenting_patient, data=data)
    with study.image.open("rb") as fh:
        stored = fh.read()
    assert stored.startswith(b"\x89PNG") and name.encode() not in stored
    assert study.original_format == "dicom"
    flat = str(study.technical_tags).upper()
    assert name.upper() not in flat and "PATIENT" not in flat


def test_database_failure_removes_the_stored_file(consenting_patient, xray_png, _isolated_media, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("apps.studies.services.record_event", boom)
    with pytest.raises(RuntimeError):
        create_study(owner=consenting_patient, data=xray_png)
    assert not Study.objects.exists()
    assert not [p for p in _isolated_media.rglob("*") if p.is_file()]
