"""What the patient sees: history, live page, result with bars, heat-map toggle, explanation,
review, low confidence, the out-of-distribution refusal, the disclaimer everywhere."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.studies.services import NOT_A_CXR_REASON, create_study, fail_study


def _page(client, study) -> str:
    client.force_login(study.owner)
    response = client.get(f"/studies/{study.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _disclaimer_shown(html: str) -> bool:
    return 'id="result-disclaimer"' in html and "not a diagnosis" in html


def test_queued_study_page_is_live_and_shows_the_disclaimer(client, queued_study):
    html = _page(client, queued_study)
    assert _disclaimer_shown(html)
    assert 'id="study-steps"' in html and 'data-step="queued" class="step step-current"' in html
    assert "js/study-live.js" in html and 'id="study-steps-data"' in html
    assert 'id="result"' not in html


def test_result_shows_every_class_as_a_bar_heatmap_toggle_and_awaiting_review(client, predicted_study):
    html = _page(client, predicted_study)
    assert _disclaimer_shown(html)
    assert 'id="result-label" data-label="PNEUMONIA">signs that can fit pneumonia<' in html
    bars = re.findall(r'<tr data-class="([^"]+)">.*?<rect width="(\d+)"', html, flags=re.S)  # % of the bar
    assert bars == [("PNEUMONIA", "80"), ("NORMAL", "15"), ("COVID-19", "5")]  # every class, largest first
    assert (
        'id="heatmap-toggle" autocomplete="off" checked' in html
        and f"/studies/{predicted_study.pk}/heatmap.png" in html
    )
    assert 'id="review-pending"' in html and "Awaiting physician review" in html
    assert 'id="explanation-pending"' in html
    assert 'id="low-confidence"' not in html
    assert 'data-step="explaining" class="step step-current"' in html


def test_low_confidence_is_said_plainly(client, queued_study, predict, settings):
    settings.DEEPMED_LOW_CONFIDENCE = 0.6
    study = predict(queued_study, {"COVID-19": 0.30, "NORMAL": 0.36, "PNEUMONIA": 0.34})
    html = _page(client, study)
    assert 'id="low-confidence"' in html and "the model is unsure" in html and "36%" in html


def test_explanation_then_physician_review(client, reviewed_study):
    html = _page(client, reviewed_study)
    assert "patchy shadows in the lower right lung" in html and 'id="explanation-pending"' not in html
    assert 'id="review-pending"' not in html
    assert re.search(r'id="review-final" data-label="NORMAL">.*<strong>normal chest X-ray</strong>', html, flags=re.S)
    assert "No consolidation on my reading." in html
    assert _disclaimer_shown(html)
    assert 'data-step="review" class="step step-done"' in html


def test_not_a_chest_xray_gets_no_label(client, queued_study, predict):
    study = predict(queued_study, ood=True)
    assert study.status == "failed" and study.failure_code == "not_a_chest_xray"
    html = _page(client, study)
    assert "Could not be analysed: this does not look like a chest X-ray" in html
    assert 'id="result"' not in html and "PNEUMONIA" not in html
    assert 'id="heatmap-image"' not in html and 'id="heatmap-toggle"' not in html
    assert 'id="review-pending"' not in html  # nothing to review: no label was given
    assert _disclaimer_shown(html)


def test_failed_study_never_shows_a_stored_prediction(client, predicted_study):
    """Even if a result was stored before the failure, a failed study shows no label nor heat-map."""
    from apps.studies.models import Study

    Study.objects.filter(pk=predicted_study.pk).update(
        status="failed", failure_code="not_a_chest_xray", failure_reason=NOT_A_CXR_REASON
    )
    predicted_study.refresh_from_db()
    html = _page(client, predicted_study)
    assert "PNEUMONIA" not in html
    assert client.get(f"/studies/{predicted_study.pk}/heatmap.png").status_code == 404


def test_other_failures_show_their_reason(client, queued_study):
    fail_study(queued_study, code="no_model", reason="no model is deployed")
    html = _page(client, queued_study)
    assert "Could not be analysed: the automated analysis is not available at the moment" in html


def test_history_is_newest_first_with_status(client, consenting_patient, predict, django_capture_on_commit_callbacks):
    from ml_core.testing import make_xray_like_png

    with django_capture_on_commit_callbacks(execute=False):
        older = create_study(owner=consenting_patient, data=make_xray_like_png(128, seed=11))
        newer = create_study(owner=consenting_patient, data=make_xray_like_png(128, seed=12))
    predict(older)
    client.force_login(consenting_patient)
    html = client.get("/studies/").content.decode()
    rows = re.findall(r'<tr data-study-id="([^"]+)"[^>]*>.*?class="status status-(\w+)"', html, flags=re.S)
    assert rows == [(str(newer.pk), "queued"), (str(older.pk), "predicted")]


def test_duplicate_upload_links_to_the_existing_study(
    client, consenting_patient, xray_png, stored_files, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr("apps.studies.services.enqueue_inference", enqueued.append)
    client.force_login(consenting_patient)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/studies/upload/", {"image": SimpleUploadedFile("a.png", xray_png)})
        files = stored_files()
        again = client.post("/studies/upload/", {"image": SimpleUploadedFile("b.png", xray_png)}, follow=True)
    assert again.redirect_chain[0][0] == first["Location"]
    assert "already uploaded this image" in again.content.decode()
    assert consenting_patient.studies.count() == 1 and len(enqueued) == 1 and stored_files() == files


def test_same_image_from_another_patient_is_a_new_study(
    consenting_patient, other_patient, xray_png, django_capture_on_commit_callbacks
):
    from apps.accounts.services import accept_disclaimer

    accept_disclaimer(other_patient)
    with django_capture_on_commit_callbacks(execute=False):
        mine = create_study(owner=consenting_patient, data=xray_png)
        theirs = create_study(owner=other_patient, data=xray_png)
    assert mine.pk != theirs.pk and not theirs.is_duplicate_upload


def test_a_transient_failure_is_not_linked_again(queued_study, xray_png, django_capture_on_commit_callbacks):
    fail_study(queued_study, code="no_model", reason="no model is deployed")
    with django_capture_on_commit_callbacks(execute=False):
        retry = create_study(owner=queued_study.owner, data=xray_png)
    assert retry.pk != queued_study.pk and not retry.is_duplicate_upload


def test_xhr_upload_gets_json_for_the_progress_bar(
    client, consenting_patient, xray_png, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    client.force_login(consenting_patient)
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(
            "/studies/upload/",
            {"image": SimpleUploadedFile("a.png", xray_png), "patient_age": "54", "symptoms": "cough"},
            HTTP_ACCEPT="application/json",
        )
    assert ok.status_code == 201
    study = consenting_patient.studies.get()
    assert ok.json() == {"redirect": f"/studies/{study.pk}/", "duplicate": False}
    assert (study.patient_age, study.symptoms) == (54, "cough")
    bad = client.post(
        "/studies/upload/", {"image": SimpleUploadedFile("a.png", b"GIF89a....")}, HTTP_ACCEPT="application/json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unsupported_file_type"


def test_upload_page_has_drop_zone_picker_and_progress_bar(client, consenting_patient):
    client.force_login(consenting_patient)
    html = client.get("/studies/upload/").content.decode()
    for marker in (
        'id="dropzone"',
        'type="file"',
        '<progress id="upload-progress"',
        "js/upload.js",
        'name="patient_age"',
        'name="symptoms"',
    ):
        assert marker in html


@pytest.mark.parametrize("path", ["/media/", "/studies/", "/static/"])
def test_no_public_media_url_serves_patient_images(client, queued_study, path):
    """The stored image is reachable only through the permission-checked views."""
    client.logout()
    assert client.get(f"{path}{queued_study.image.name}").status_code in (302, 404)
