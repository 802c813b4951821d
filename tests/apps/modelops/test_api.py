"""/api/v1 model operations: admins only, exact routes, error envelope."""

from __future__ import annotations

import pytest

from apps.modelops.models import Promotion, TrainingRun

pytestmark = pytest.mark.django_db

ROUTES = [
    ("get", "/api/v1/models"),
    ("post", "/api/v1/models/cxr-tiny/versions/1/promote"),
    ("post", "/api/v1/models/cxr-tiny/rollback"),
    ("post", "/api/v1/training-runs"),
    ("get", "/api/v1/training-runs/1"),
    ("get", "/api/v1/retraining-queue"),
]


@pytest.mark.parametrize("method,url", ROUTES)
def test_only_admins(api_client, physician, consenting_patient, method, url):
    assert getattr(api_client, method)(url).status_code == 401
    for user in (physician, consenting_patient):
        api_client.force_authenticate(user)
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


def test_models_list(api_client, admin_user, champion):
    api_client.force_authenticate(admin_user)
    body = api_client.get("/api/v1/models").json()
    assert [(m["name"], m["version"], m["alias"]) for m in body] == [("cxr-tiny", "1", "champion")]
    assert body[0]["classes"] == ["COVID-19", "NORMAL", "PNEUMONIA"]


def test_start_training_run_is_accepted_and_readable(
    api_client, admin_user, modelops_settings, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(
            "/api/v1/training-runs",
            {"architecture": "cxr_tiny", "tier": "quick", "augmentation": "none"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1
    run_id = response.json()["id"]
    assert TrainingRun.objects.get(pk=run_id).started_by == admin_user
    detail = api_client.get(f"/api/v1/training-runs/{run_id}").json()
    assert detail["status"] == "queued" and detail["params"]["tier"] == "quick"
    assert detail["dataset_summary"]["class_counts"] == {"COVID-19": 8, "NORMAL": 8, "PNEUMONIA": 8}
    assert set(detail) >= {"progress", "mlflow_run_id", "error"}


def test_start_training_rejects_unknown_architecture(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    response = api_client.post("/api/v1/training-runs", {"architecture": "gpt-5", "tier": "quick"}, format="json")
    assert response.status_code == 400
    assert "architecture" in response.json()["error"]["details"]["fields"]
    assert api_client.get("/api/v1/training-runs/999").json()["error"]["code"] == "not_found"


def test_rollback_without_history_is_409(api_client, admin_user, champion):
    api_client.force_authenticate(admin_user)
    response = api_client.post("/api/v1/models/cxr-tiny/rollback")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_roll_back"
    assert not Promotion.objects.exists()


def test_retraining_queue(api_client, admin_user, modelops_settings):
    modelops_settings.DEEPMED_RETRAIN_LABEL_THRESHOLD = 7
    api_client.force_authenticate(admin_user)
    body = api_client.get("/api/v1/retraining-queue").json()
    assert body["threshold"] == 7 and body["new_labels"] == 0 and body["last_trigger"] is None


def test_parameters_refused_by_the_service_answer_its_field_errors(api_client, admin_user, modelops_settings):
    from ml_core.models import CAM_ARCHITECTURES

    api_client.force_authenticate(admin_user)  # the serializer lets any architecture name through
    response = api_client.post("/api/v1/training-runs", {"architecture": "gpt-5", "tier": "quick"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"] == "The request is not valid."
    assert error["details"] == {"fields": {"architecture": f"one of {', '.join(CAM_ARCHITECTURES)}"}}
    assert not TrainingRun.objects.exists()
