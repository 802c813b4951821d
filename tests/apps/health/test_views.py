import pytest


def test_live_is_always_ok(client):
    assert client.get("/health/live").json() == {"status": "ok"}


@pytest.fixture(scope="module")
def embedded_worker():
    """The embedded mode's in-process Celery worker thread for this module. Module scope:
    starting it closes the calling thread's database connection (Celery's Django fixup), which
    must not happen inside a test's transaction; stopped after, so later tests' tasks stay put."""
    from django.conf import settings

    if not settings.EMBEDDED_MODE:
        pytest.skip("embedded mode only: the services pass pings a real worker process")
    from django.test import override_settings

    from deepmed_web.embedded import start_embedded_worker, stop_embedded_worker

    # Module scope runs before the autouse fixture that keeps test workers cold; a warm-up thread
    # reading models outside any test's database access would hold the `warm` check.
    with override_settings(DEEPMED_WARM_UP_WORKERS=False):
        start_embedded_worker(periodic_tasks=False)
    yield
    stop_embedded_worker()


def test_ready_names_the_missing_model(client, db, embedded_worker):
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["model"], body
    assert body["checks"]["model"] == "no model is deployed"
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"


def test_ready_when_everything_is_up(client, champion, embedded_worker):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["failed"] == []
    assert response.json()["checks"]["worker"] == "ok"  # the in-process worker answered the ping
    assert response.json()["checks"]["warm"] == "ok"


def test_ready_names_the_warm_up_while_the_workers_load_their_models(client, champion, embedded_worker, monkeypatch):
    from deepmed_web import readiness

    monkeypatch.setattr(readiness, "warming_up", lambda: ["llm"])
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["warm"]
    assert response.json()["checks"]["warm"] == "warming up the workers of llm"


def test_ready_names_the_worker_when_none_answers(client, champion, embedded_worker, monkeypatch):
    from deepmed_web.celery import app

    monkeypatch.setattr(app.control, "ping", lambda **kwargs: [])  # as if the worker thread were gone
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]
    assert "no Celery worker answered" in response.json()["checks"]["worker"]
    # A web pod's readiness probe can leave the workers out.
    assert client.get("/health/ready?exclude=worker").status_code == 200


def test_ready_names_a_broken_storage(client, champion, settings, tmp_path, embedded_worker):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the media folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}},
    }
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["failed"] == ["storage"]


def test_metrics_export_inference_figures(client, queued_study, champion):
    from workers.inference import run_inference

    run_inference(str(queued_study.pk))
    label = queued_study.predictions.get().label
    text = client.get("/metrics").content.decode()
    assert "deepmed_inference_latency_seconds_bucket" in text
    assert f'deepmed_predictions_total{{label="{label}",model_version="1"}}' in text
    assert "django_http_requests_total_by_method_total" in text
