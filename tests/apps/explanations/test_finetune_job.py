"""The explainer's LoRA fine-tune as a training job: started by an admin (API or console),
run on the `training` queue, tracked in MLflow, once per run, failures stored on the run."""

import logging

import pytest

from apps.audit.models import AuditEvent
from apps.explanations import services
from apps.explanations.models import ExplainerFinetuneRun

EDIT = "Your X-ray shows signs that can fit pneumonia (82% probability). Your physician will call you today."


@pytest.fixture
def edited(template_explained_study, physician):
    services.edit_explanation(study=template_explained_study, editor=physician, text=EDIT)
    return template_explained_study


@pytest.fixture
def mlflow_in_tmp(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_the_job_runs_on_the_training_queue():
    from deepmed_web.celery import app

    assert app.amqp.router.route({}, "workers.training.finetune_explainer")["queue"].name == "training"


def test_only_admins_start_it_and_not_without_edits(api_as, db, admin_user, physician, patient):
    for user in (physician, patient):
        assert api_as(user).post("/api/v1/explainer/finetune-runs", {}, format="json").status_code == 403
    refused = api_as(admin_user).post("/api/v1/explainer/finetune-runs", {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_edits"
    assert not ExplainerFinetuneRun.objects.exists()


@pytest.mark.slow
@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "child-process"])
def test_admin_starts_it_the_worker_runs_it_once_and_mlflow_has_it(
    api_as,
    edited,
    admin_user,
    settings,
    tiny_llm_checkpoint,
    mlflow_in_tmp,
    django_capture_on_commit_callbacks,
    caplog,
    in_child,
):
    settings.DEEPMED_LLM_CHECKPOINT = str(tiny_llm_checkpoint)
    settings.DEEPMED_TRAINING_IN_CHILD_PROCESS = in_child  # embedded mode's default: a child process
    caplog.set_level(logging.INFO, logger="ml_core.child_process")
    api = api_as(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        started = api.post("/api/v1/explainer/finetune-runs", {"steps": 2}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    assert len(queued) == 1  # enqueued once the run row is committed
    run_id = started.json()["id"]

    run = services.execute_explainer_finetune(run_id)  # what the training worker does
    assert run.status == "succeeded", run.error
    assert run.examples == 1 and run.mlflow_run_id
    assert any("finetune_lora runs in child process" in r.getMessage() for r in caplog.records) == in_child
    assert (mlflow_in_tmp / "llm" / f"lora-run-{run_id}" / "checkpoint" / "final" / "lit_model.pth").is_file()
    assert services.execute_explainer_finetune(run_id) is None  # a redelivered message does nothing
    body = api.get(f"/api/v1/explainer/finetune-runs/{run_id}").json()
    assert body["status"] == "succeeded" and body["mlflow_run_id"] == run.mlflow_run_id

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI)
    assert client.get_run(run.mlflow_run_id).info.status == "FINISHED"
    assert AuditEvent.objects.filter(action="explainer.finetune.start", actor=admin_user).exists()


def test_a_failing_job_stores_its_error(
    edited, admin_user, settings, mlflow_in_tmp, django_capture_on_commit_callbacks
):
    settings.DEEPMED_LLM_CHECKPOINT = str(mlflow_in_tmp / "no-such-checkpoint")
    with django_capture_on_commit_callbacks(execute=False):
        run = services.start_explainer_finetune(actor=admin_user, steps=2)
    run = services.execute_explainer_finetune(run.pk)
    assert run.status == "failed" and run.error and run.finished_at


def test_the_console_offers_it(client, edited, admin_user, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    page = client.get("/modelops/").content.decode()
    assert 'id="start-explainer-finetune"' in page and "1 edited explanation collected" in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/modelops/explainer-finetune/", {"steps": "3"})
    assert response.status_code == 302
    assert ExplainerFinetuneRun.objects.get().steps == 3


def test_a_finetune_whose_worker_died_is_failed_by_the_sweeper(db, settings, minutes_ago):
    from apps.jobs.services import claim_job
    from workers.maintenance import sweep_jobs

    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    dead = claim_job(ExplainerFinetuneRun, ExplainerFinetuneRun.objects.create().pk, worker="gpu@host")
    alive = claim_job(ExplainerFinetuneRun, ExplainerFinetuneRun.objects.create().pk, worker="gpu@host")
    ExplainerFinetuneRun.objects.filter(pk=dead.pk).update(heartbeat_at=minutes_ago(90))

    assert sweep_jobs()["explanations.explainerfinetunerun"]["stalled"] == [dead.pk]
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "failed" and "no progress for 30 minutes" in dead.error and dead.finished_at
    assert alive.status == "running"
    assert AuditEvent.objects.filter(action="explainer.finetune.stalled", object_id=str(dead.pk)).exists()
    assert services.execute_explainer_finetune(dead.pk) is None  # a late redelivery changes nothing
