"""/api/v1/studies: the contract apps build on (paths, field names, codes), with JWT."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent, Outcome
from apps.studies.models import Study

STUDY_FIELDS = {
    "id",
    "status",
    "status_text",
    "created_at",
    "prediction",
    "low_confidence",
    "explanation",
    "review",
    "heatmap_url",
    "image_url",
    "error",
}


def _upload(api_client, data, **extra):
    return api_client.post(
        "/api/v1/studies", {"image": SimpleUploadedFile("cxr.png", data), **extra}, format="multipart"
    )


def test_upload_without_consent_is_403_consent_required(api_client, patient, xray_png, stored_files, api_as):
    api_as(patient)
    response = _upload(api_client, xray_png)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "consent_required"
    assert not Study.objects.exists() and stored_files() == []
    no_file = api_client.post("/api/v1/studies", {}, format="multipart")
    assert no_file.status_code == 403 and no_file.json()["error"]["code"] == "consent_required"


def test_upload_after_consent_creates_a_queued_study(
    api_client, patient, xray_png, monkeypatch, django_capture_on_commit_callbacks, api_as
):
    enqueued = []
    monkeypatch.setattr("apps.studies.services.enqueue_inference", enqueued.append)
    api_as(patient)
    consent = api_client.get("/api/v1/consent").json()
    assert api_client.post("/api/v1/consent", {"version": consent["version"]}, format="json").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(api_client, xray_png, age=61, symptoms="fever")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == STUDY_FIELDS
    assert body["status"] == "queued" and body["prediction"] is None and body["error"] is None
    assert body["image_url"] == f"http://testserver/api/v1/studies/{body['id']}/image" and body["heatmap_url"] is None
    study = Study.objects.get(pk=body["id"])
    assert (study.patient_age, study.symptoms, study.owner) == (61, "fever", patient)
    assert enqueued == [study.pk]
    again = _upload(api_client, xray_png)
    assert again.status_code == 200 and again.json()["id"] == body["id"]  # duplicate: the same study


def test_an_upload_asks_for_consent_once_and_not_for_results_a_new_study_cannot_have(
    api_client, consenting_patient, xray_png, api_as
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api_as(consenting_patient)
    with CaptureQueriesContext(connection) as queries:
        response = _upload(api_client, xray_png)
    assert response.status_code == 201 and response.json()["prediction"] is None
    tables = [q["sql"].split(" FROM ")[1].split()[0].strip('"') for q in queries if " FROM " in q["sql"]]
    assert tables.count("accounts_consent") == 1  # view, intake and service ask; the answer is kept
    assert not {"studies_prediction", "studies_explanation", "review_review"} & set(tables)


def test_detail_has_the_contract_fields(api_client, reviewed_study, api_as):
    api_as(reviewed_study.owner)
    body = api_client.get(f"/api/v1/studies/{reviewed_study.pk}").json()
    assert set(body) == STUDY_FIELDS
    assert body["status"] == "reviewed"
    timing = {key: body["prediction"].pop(key) for key in ("queued_at", "started_at", "finished_at")}
    assert timing["queued_at"] and timing["finished_at"]  # started_at: this fixture skips the worker's claim
    assert body["prediction"] == {
        "label": "PNEUMONIA",
        "probabilities": {"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80},
        "confidence": 0.80,
        "model_version": "7",
        "model_name": "cxr-test",
    }
    explained_at = body["explanation"].pop("created_at")
    assert explained_at >= timing["finished_at"]  # stored after the prediction it explains
    assert body["explanation"].pop("started_at") is None  # this fixture skips the llm worker's claim
    assert body["explanation"] == {
        "text": "The model saw patchy shadows in the lower right lung.",
        "engine": "template",
    }
    assert body["review"]["final_label"] == "NORMAL" and body["review"]["note"] == "No consolidation on my reading."
    assert body["review"]["reviewed_at"]
    assert body["heatmap_url"].endswith(f"/api/v1/studies/{reviewed_study.pk}/heatmap")
    for url in (body["image_url"], body["heatmap_url"]):
        response = api_client.get(url, HTTP_ACCEPT="image/png")
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_failed_study_has_error_and_no_prediction(api_client, queued_study, predict, api_as):
    study = predict(queued_study, ood=True)
    api_as(study.owner)
    body = api_client.get(f"/api/v1/studies/{study.pk}").json()
    assert body["status"] == "failed" and body["prediction"] is None and body["heatmap_url"] is None
    assert (
        body["error"]["code"] == "not_a_chest_xray" and "does not look like a chest X-ray" in body["error"]["message"]
    )


def test_list_is_own_paginated_newest_first(
    api_client, consenting_patient, other_patient, xray_png, django_capture_on_commit_callbacks, monkeypatch, api_as
):
    from apps.accounts.services import accept_disclaimer
    from apps.studies.services import create_study
    from ml_core.testing import make_xray_like_png

    monkeypatch.setattr("rest_framework.pagination.PageNumberPagination.page_size", 2)
    accept_disclaimer(other_patient)
    with django_capture_on_commit_callbacks(execute=False):
        mine = [create_study(owner=consenting_patient, data=make_xray_like_png(96, seed=s)) for s in range(3)]
        create_study(owner=other_patient, data=xray_png)
    api_as(consenting_patient)
    page1 = api_client.get("/api/v1/studies").json()
    page2 = api_client.get(page1["next"]).json()
    assert page1["count"] == 3
    assert [s["id"] for s in page1["results"] + page2["results"]] == [str(s.pk) for s in reversed(mine)]


def test_another_patient_gets_404_everywhere_and_it_is_audited(api_client, predicted_study, other_patient, api_as):
    api_as(other_patient)
    base = f"/api/v1/studies/{predicted_study.pk}"
    for method, path in (("get", ""), ("get", "/image"), ("get", "/heatmap"), ("delete", "")):
        response = getattr(api_client, method)(base + path, HTTP_ACCEPT="image/png" if path else "application/json")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert Study.objects.filter(pk=predicted_study.pk).exists()
    assert AuditEvent.objects.filter(actor=other_patient, outcome=Outcome.DENIED).count() == 4


def test_delete_is_204_and_removes_the_files(
    api_client, predicted_study, django_capture_on_commit_callbacks, stored_files, api_as
):
    api_as(predicted_study.owner)
    assert stored_files()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(f"/api/v1/studies/{predicted_study.pk}")
    assert response.status_code == 204
    assert not Study.objects.exists() and stored_files() == []
    assert api_client.get(f"/api/v1/studies/{predicted_study.pk}").status_code == 404


def test_physicians_read_but_do_not_upload_or_delete(api_client, predicted_study, physician, xray_png, api_as):
    api_as(physician)
    assert api_client.get(f"/api/v1/studies/{predicted_study.pk}").status_code == 200
    refused = api_client.delete(f"/api/v1/studies/{predicted_study.pk}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    response = _upload(api_client, xray_png)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("path", ["/api/v1/studies", "/api/v1/consent"])
def test_anonymous_is_401_in_the_envelope(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_upload_without_image_is_a_validation_error(api_client, consenting_patient, api_as):
    api_as(consenting_patient)
    response = api_client.post("/api/v1/studies", {"age": "40"}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "image" in error["details"]["fields"]
