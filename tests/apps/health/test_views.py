def test_live_is_always_ok(client):
    assert client.get("/health/live").json() == {"status": "ok"}


def test_ready_names_the_missing_model(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["model"]
    assert body["checks"]["model"] == "no model is deployed"
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"


def test_ready_when_everything_is_up(client, champion):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["failed"] == []


def test_ready_names_a_broken_storage(client, champion, settings, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the media folder should be")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}}}
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
