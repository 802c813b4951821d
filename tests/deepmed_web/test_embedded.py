"""The embedded mode end to end: a web upload is published on the in-memory Celery
transport, consumed by the in-process worker thread, and the study reaches `predicted` (then `explained`)."""

import os
import time

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode only")]


def test_upload_is_processed_by_the_in_process_worker(client, consenting_patient, champion, xray_png):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.studies.models import Study, StudyStatus
    from deepmed_web.embedded import start_embedded_worker

    start_embedded_worker(sweep_every_s=3600)
    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"image": SimpleUploadedFile("cxr.png", xray_png)})
    assert response.status_code == 302
    study = Study.objects.get(owner=consenting_patient)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        study.refresh_from_db()
        # The llm task follows the prediction: wait for it so nothing writes after the test.
        if study.status in (StudyStatus.EXPLAINED, StudyStatus.FAILED):
            break
        time.sleep(0.2)
    assert study.status == StudyStatus.EXPLAINED, (study.status, study.failure_reason)
    assert study.predictions.get().model_version == champion
