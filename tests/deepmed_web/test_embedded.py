"""The embedded mode end to end: a web upload is published on the in-memory Celery
transport, consumed by the in-process worker thread, and the study reaches `predicted` (then `explained`)."""

import os

import pytest

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode only"),
]


def test_upload_is_processed_by_the_in_process_worker(
    client, consenting_patient, champion, xray_png, study_settled, embedded_worker_thread
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.studies.models import Study, StudyStatus

    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"image": SimpleUploadedFile("cxr.png", xray_png)})
    assert response.status_code == 302
    study = study_settled(Study.objects.get(owner=consenting_patient), timeout=60)
    assert study.status == StudyStatus.EXPLAINED, (study.status, study.failure_reason)
    assert study.predictions.get().model_version == champion


def test_embedded_beat_covers_every_periodic_task(settings):
    """The embedded mode runs no `celery beat`: it schedules the same entries itself."""
    from deepmed_web.embedded import beat_entries

    entries = {task: seconds for _, seconds, task in beat_entries()}
    assert entries["workers.training.check_retraining_queue"] == float(settings.DEEPMED_RETRAIN_CHECK_SECONDS)
    assert entries["workers.monitoring.compute_drift_scores"] == float(settings.DEEPMED_DRIFT_CHECK_SECONDS)
    assert {
        "workers.maintenance.requeue_stalled_studies",
        "workers.llm.requeue_unexplained_studies",
        "workers.maintenance.sweep_jobs",
    } <= set(entries)


def test_embedded_beat_keeps_sending_even_after_a_failed_publish(monkeypatch):
    import threading

    from deepmed_web import embedded

    sent: list[str] = []
    stop = threading.Event()  # set after the third send: ends this timer chain

    def send_task(name):
        sent.append(name)
        if len(sent) == 1:
            raise ConnectionError("broker hiccup")
        if len(sent) >= 3:
            stop.set()

    monkeypatch.setattr(embedded.app, "send_task", send_task)
    embedded._every(0.02, "workers.maintenance.requeue_stalled_studies", stop=stop)
    assert stop.wait(5), sent
    assert sent[:3] == ["workers.maintenance.requeue_stalled_studies"] * 3
