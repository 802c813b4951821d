"""Identifying text in the pixels: DICOMs that say so are refused or flagged at intake, physicians
flag what they see, and a flagged image never reaches the retraining queue (issue 17 s.2)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.modelops.selectors import new_samples, training_samples
from apps.review.models import LabeledSample
from apps.review.services import save_review
from apps.studies.models import IdentifyingText, Study
from apps.studies.services import (
    StudyIntakeError,
    create_study,
    set_identifying_text,
)
from ml_core.testing import make_dicom_bytes
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

BURNED_IN = {"BurnedInAnnotation": "YES"}
SECONDARY_CAPTURE = {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "ConversionType": "WSD"}


def _nothing_stored(stored_files) -> None:
    assert not Study.objects.exists()
    assert stored_files() == []


# --- intake ------------------------------------------------------------------------------


def test_the_service_refuses_a_burned_in_dicom(consenting_patient, stored_files):
    with pytest.raises(StudyIntakeError) as refused:
        create_study(owner=consenting_patient, data=make_dicom_bytes(header=BURNED_IN))
    assert refused.value.code == "dicom_burned_in_phi"
    assert "burned into its pixels" in refused.value.message
    _nothing_stored(stored_files)


def test_the_web_form_refuses_a_burned_in_dicom(client, consenting_patient, stored_files):
    client.force_login(consenting_patient)
    upload = SimpleUploadedFile("x.dcm", make_dicom_bytes(header=BURNED_IN))
    response = client.post("/studies/upload/", {"image": upload}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "dicom_burned_in_phi"
    page = client.post("/studies/upload/", {"image": SimpleUploadedFile("x.dcm", make_dicom_bytes(header=BURNED_IN))})
    assert page.status_code == 400 and "burned into its pixels" in page.content.decode()
    _nothing_stored(stored_files)


def test_the_api_refuses_a_burned_in_dicom(api_as, consenting_patient, stored_files):
    upload = SimpleUploadedFile("x.dcm", make_dicom_bytes(header=BURNED_IN))
    response = api_as(consenting_patient).post("/api/v1/studies", {"image": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "dicom_burned_in_phi"
    _nothing_stored(stored_files)


def test_a_refused_secondary_capture_has_the_same_code_and_says_why(api_as, consenting_patient, settings, stored_files):
    settings.DEEPMED_DICOM_SECONDARY_CAPTURE = "refuse"
    upload = SimpleUploadedFile("x.dcm", make_dicom_bytes(header=SECONDARY_CAPTURE))
    response = api_as(consenting_patient).post("/api/v1/studies", {"image": upload}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "dicom_burned_in_phi" and error["details"]["reason"] == "dicom_secondary_capture"
    _nothing_stored(stored_files)


@pytest.mark.parametrize(
    ("setting", "value", "header", "expected"),
    [
        ("DEEPMED_DICOM_SECONDARY_CAPTURE", "flag", SECONDARY_CAPTURE, IdentifyingText.SECONDARY_CAPTURE),
        ("DEEPMED_DICOM_SECONDARY_CAPTURE", "accept", SECONDARY_CAPTURE, IdentifyingText.NONE),
        ("DEEPMED_DICOM_BURNED_IN", "flag", BURNED_IN, IdentifyingText.BURNED_IN_ANNOTATION),
    ],
)
def test_a_flagged_dicom_is_stored_with_its_flag(consenting_patient, settings, setting, value, header, expected):
    setattr(settings, setting, value)
    study = create_study(owner=consenting_patient, data=make_dicom_bytes(header=header))
    study.refresh_from_db()
    assert study.identifying_text == expected
    created = AuditEvent.objects.get(action="study.create", object_id=str(study.pk))
    assert created.detail.get("identifying_text", "") == expected


def test_a_flagged_secondary_capture_never_reaches_training(physician):
    study = StudyFactory(predicted=True, data=make_dicom_bytes(header=SECONDARY_CAPTURE))
    assert study.identifying_text == IdentifyingText.SECONDARY_CAPTURE
    save_review(study.pk, physician=physician, decision="confirm", fit_for_training=True)
    sample = LabeledSample.objects.get(study=study)  # the physician's label is on record...
    assert sample.excluded  # ...but the image never trains
    assert not training_samples().exists() and not new_samples().exists()


def test_an_invalid_view_position_is_dropped_not_stored(consenting_patient):
    study = create_study(owner=consenting_patient, data=make_dicom_bytes(header={"ViewPosition": "PA<script>"}))
    study.refresh_from_db()
    assert "ViewPosition" not in study.technical_tags
    assert study.technical_tags["_dropped"] == ["ViewPosition"]
    assert study.technical_tags["Modality"] == "DX"


# --- the physician's flag ----------------------------------------------------------------


def test_the_physician_flag_excludes_the_existing_sample_and_is_audited(physician):
    study = StudyFactory(predicted=True)
    save_review(study.pk, physician=physician, decision="confirm", fit_for_training=True)
    assert training_samples().count() == 1
    study, excluded = set_identifying_text(study.pk, flagged=True, actor=physician, ip_address="10.0.0.9")
    assert study.identifying_text == IdentifyingText.PHYSICIAN and excluded == 1
    assert not training_samples().exists()
    event = AuditEvent.objects.get(action="study.identifying_text", object_id=str(study.pk))
    assert event.actor == physician and event.ip_address == "10.0.0.9"
    assert event.detail == {"flagged": True, "identifying_text": "physician", "previous": "", "samples_excluded": 1}


def test_later_reviews_of_a_flagged_study_do_not_train_until_the_flag_is_cleared(physician):
    study = StudyFactory(predicted=True)
    set_identifying_text(study.pk, flagged=True, actor=physician)
    save_review(study.pk, physician=physician, decision="confirm")
    assert not training_samples().exists()
    study, _ = set_identifying_text(study.pk, flagged=False, actor=physician)
    assert study.identifying_text == ""
    assert AuditEvent.objects.filter(action="study.identifying_text", detail__flagged=False).exists()
    save_review(study.pk, physician=physician, decision="correct", final_label="NORMAL")  # a new version
    assert list(training_samples().values_list("label", flat=True)) == ["NORMAL"]


def test_patients_cannot_set_the_flag(queued_study):
    with pytest.raises(PermissionDenied):
        set_identifying_text(queued_study.pk, flagged=True, actor=queued_study.owner)
    queued_study.refresh_from_db()
    assert queued_study.identifying_text == ""
