"""Embedded mode end to end: upload → inference task → llm task on the in-process worker →
the study reaches `explained` with an Explanation row, the prediction untouched."""

import os

import pytest

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode only"),
]


def test_upload_is_predicted_then_explained_by_the_in_process_worker(
    client,
    consenting_patient,
    champion,
    xray_png,
    settings,
    tiny_llm_checkpoint,
    study_settled,
    embedded_worker_thread,
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.studies.models import Study, StudyStatus

    settings.DEEPMED_LLM_CHECKPOINT = str(tiny_llm_checkpoint)
    settings.DEEPMED_LLM_MAX_NEW_TOKENS = 40
    client.force_login(consenting_patient)
    assert client.post("/studies/upload/", {"image": SimpleUploadedFile("cxr.png", xray_png)}).status_code == 302
    study = study_settled(Study.objects.get(owner=consenting_patient))
    assert study.status == StudyStatus.EXPLAINED, (study.status, study.failure_reason)
    prediction = study.predictions.get()
    assert study.explanation.engine in ("litgpt", "template")
    assert study.explanation.validation["facts"]["label"] == prediction.label
    body = client.get(f"/api/v1/studies/{study.pk}/explanation").json()
    assert body["text"] == study.explanation.text
