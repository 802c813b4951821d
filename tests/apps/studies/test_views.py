"""Access to patient data over HTTP: ownership, roles, and the audit trail of every read."""

import pytest

from apps.audit.models import AuditEvent, Outcome


def _reads(study, action="study.read"):
    return AuditEvent.objects.filter(object_type="studies.study", object_id=str(study.pk), action=action)


def test_owner_reads_own_study_and_the_read_is_audited(client, queued_study):
    client.force_login(queued_study.owner)
    response = client.get(f"/studies/{queued_study.pk}/")
    assert response.status_code == 200
    assert b"not a diagnosis" in response.content
    event = _reads(queued_study).get()
    assert event.actor == queued_study.owner and event.outcome == Outcome.ALLOWED
    assert event.ip_address == "127.0.0.1"


def test_another_patient_is_denied_and_the_attempt_is_audited(client, queued_study, other_patient):
    client.force_login(other_patient)
    for path in ("", "status.json", "image.png", "heatmap.png"):
        assert client.get(f"/studies/{queued_study.pk}/{path}").status_code == 404
    denied = AuditEvent.objects.filter(object_id=str(queued_study.pk), outcome=Outcome.DENIED, actor=other_patient)
    assert denied.count() == 4


def test_physician_may_read_any_study(client, queued_study, physician):
    client.force_login(physician)
    assert client.get(f"/studies/{queued_study.pk}/status.json").json()["status"] == "queued"
    assert _reads(queued_study, "study.status").get().actor == physician


def test_anonymous_is_sent_to_login(client, queued_study):
    response = client.get(f"/studies/{queued_study.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_image_download_is_private(client, queued_study):
    client.force_login(queued_study.owner)
    response = client.get(f"/studies/{queued_study.pk}/image.png")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert "no-store" in response["Cache-Control"]


def test_thumbnail_is_small_private_and_audited(client, queued_study, other_patient, physician):
    import io

    from PIL import Image

    from apps.audit.models import AuditEvent

    client.force_login(physician)
    response = client.get(f"/studies/{queued_study.pk}/thumbnail.png")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    small = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert max(small.size) == 160 and max(small.size) < max(queued_study.width, queued_study.height)
    assert abs(small.size[0] / small.size[1] - queued_study.width / queued_study.height) < 0.02
    assert AuditEvent.objects.filter(action="study.thumbnail", object_id=str(queued_study.pk)).exists()
    client.force_login(other_patient)
    assert client.get(f"/studies/{queued_study.pk}/thumbnail.png").status_code == 404


def test_studies_from_before_thumbnails_show_the_image(client, queued_study):
    queued_study.thumbnail.delete(save=True)
    client.force_login(queued_study.owner)
    response = client.get(f"/studies/{queued_study.pk}/thumbnail.png")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == queued_study.image.open("rb").read()


def test_upload_through_the_web_form(
    client, consenting_patient, xray_png, django_capture_on_commit_callbacks, monkeypatch
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    client.force_login(consenting_patient)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/studies/upload/", {"image": SimpleUploadedFile("cxr.png", xray_png), "symptoms": "cough"}
        )
    assert response.status_code == 302
    study = consenting_patient.studies.get()
    assert response["Location"] == f"/studies/{study.pk}/"


def test_upload_of_a_pdf_shows_the_reason(client, consenting_patient):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"image": SimpleUploadedFile("cxr.png", b"%PDF-1.4 ...")})
    assert response.status_code == 400
    assert not consenting_patient.studies.exists()


def test_upload_page_asks_for_consent_first(client, patient):
    client.force_login(patient)
    response = client.get("/studies/upload/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/disclaimer/")


@pytest.mark.parametrize("role_fixture", ["physician", "admin_user"])
def test_staff_cannot_upload_as_patients(client, request, role_fixture):
    client.force_login(request.getfixturevalue(role_fixture))
    assert client.get("/studies/upload/").status_code == 403


def test_status_polling_answers_304_while_the_status_is_unchanged(client, queued_study):
    from apps.studies.models import StudyStatus
    from apps.studies.services import transition_study

    client.force_login(queued_study.owner)
    url = f"/studies/{queued_study.pk}/status.json"
    first = client.get(url)
    etag = first["ETag"]
    assert first.status_code == 200 and first.json()["status"] == "queued" and etag.startswith('"')
    unchanged = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged["ETag"] == etag
    assert client.get(url, HTTP_IF_NONE_MATCH='"stale"').status_code == 200

    transition_study(queued_study, StudyStatus.PREDICTING)  # the study moves on: a new body and tag
    moved = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and moved["ETag"] != etag and moved.json()["status"] == "predicting"


def test_a_304_still_needs_the_right_to_see_the_study(client, queued_study, other_patient):
    client.force_login(queued_study.owner)
    etag = client.get(f"/studies/{queued_study.pk}/status.json")["ETag"]
    client.force_login(other_patient)
    assert client.get(f"/studies/{queued_study.pk}/status.json", HTTP_IF_NONE_MATCH=etag).status_code == 404
