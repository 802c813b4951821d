"""Tabular experiments on the shared job lifecycle: queued on the training queue, run by the
worker's service with live progress, the model directory saved and loadable; failures and
cancellation end the job, not the worker."""

from __future__ import annotations

import numpy as np
import pytest

from apps.audit.models import AuditEvent
from apps.jobs.models import JobStatus
from apps.jobs.selectors import job_models, queue_of
from apps.jobs.services import cancel_job
from apps.tabular.errors import TabularError
from apps.tabular.models import TabularExperiment
from apps.tabular.selectors import get_experiment, list_experiments
from apps.tabular.services import execute_experiment, start_experiment, upload_dataset
from ml_core.tabular.artifacts import load_model
from ml_core.tabular.schema import validate_rows
from ml_core.tabular.testing import make_frame

pytestmark = pytest.mark.django_db

QUICK = {"grid": "quick", "folds": 3, "permutation_repeats": 1, "algorithms": ["logistic_regression", "naive_bayes"]}


@pytest.fixture
def dataset(admin_user):
    return upload_dataset(actor=admin_user, name="risk", data=make_frame(120, seed=2).to_csv(index=False).encode())


@pytest.fixture
def model_dir(settings, tmp_path):
    settings.DEEPMED_MODEL_DIR = tmp_path / "models"
    return settings.DEEPMED_MODEL_DIR


def test_experiment_is_a_job_on_the_training_queue(admin_user, dataset, django_capture_on_commit_callbacks):
    assert TabularExperiment in job_models() and queue_of(TabularExperiment) == "training"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        exp = start_experiment(actor=admin_user, dataset=dataset, config=QUICK)
    assert len(callbacks) == 1  # the task message goes out once the row is committed
    assert exp.status == JobStatus.QUEUED and exp.config["algorithms"] == QUICK["algorithms"]
    assert exp.config["clean"]["zero_as_missing"] == "auto"  # the full TrainConfig is recorded
    assert AuditEvent.objects.filter(action="tabular.experiment.start", object_id=str(exp.pk)).exists()
    assert list(list_experiments(dataset)) == [exp]


def test_worker_runs_it_with_progress_and_saves_a_loadable_model(admin_user, dataset, model_dir):
    exp = start_experiment(actor=admin_user, dataset=dataset, config=QUICK)
    done = execute_experiment(exp.pk, worker="w1")
    assert done.status == JobStatus.SUCCEEDED, done.error
    exp = get_experiment(exp.pk)
    assert exp.chosen_algorithm in QUICK["algorithms"] and exp.progress["event"] == "done"
    assert set(exp.result["algorithms"]) == set(QUICK["algorithms"]) and exp.result["test"]["roc_auc"] > 0.8
    model = load_model(exp.model_dir)
    assert model.manifest["dataset_sha256"] == dataset.sha256
    X = validate_rows(model.schema, make_frame(30, seed=5).drop(columns=["target"]))
    assert np.all((model.predict_proba(X) >= 0) & (model.predict_proba(X) <= 1))
    assert execute_experiment(exp.pk, worker="w2") is None  # a duplicate message does nothing
    assert AuditEvent.objects.filter(action="tabular.experiment.finish", object_id=str(exp.pk)).exists()


def test_a_data_problem_fails_the_job_with_its_code(admin_user, dataset, model_dir):
    exp = start_experiment(actor=admin_user, dataset=dataset, config={**QUICK, "exclude": ["glucose", "nope"]})
    done = execute_experiment(exp.pk)
    assert done.status == JobStatus.FAILED and done.error.startswith("unknown_column")


def test_cancel_while_running_stops_at_the_next_progress_event(admin_user, dataset, model_dir, monkeypatch):
    exp = start_experiment(actor=admin_user, dataset=dataset, config=QUICK)
    import apps.tabular.services as services

    real = services.heartbeat_job

    def cancel_then_beat(job, **kw):
        cancel_job(TabularExperiment.objects.get(pk=job.pk), actor=admin_user)
        real(job, **kw)

    monkeypatch.setattr(services, "heartbeat_job", cancel_then_beat)
    done = execute_experiment(exp.pk)
    assert done.status == JobStatus.CANCELLED and not done.model_dir


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"target": "outcome"}, "target 'outcome'"),
        ({"algorithms": ["xgboost"]}, "algorithms must be among"),
        ({"scoring": "r2"}, "scoring must be one of"),
        ({"test_size": 0.9}, "test_size"),
        ({"unknown_key": 1, "folds": "many"}, None),
    ],
)
def test_invalid_configurations_are_refused_before_queueing(admin_user, dataset, config, fragment):
    if fragment is None:  # unknown keys are ignored; a wrong type still makes a valid dataclass: accepted
        start_experiment(actor=admin_user, dataset=dataset, config={**QUICK, **config})
        return
    with pytest.raises(TabularError) as exc:
        start_experiment(actor=admin_user, dataset=dataset, config={**QUICK, **config})
    assert exc.value.code == "invalid_config" and fragment in exc.value.message
    assert TabularExperiment.objects.count() == 0


def test_only_admins_start_experiments(physician, dataset):
    with pytest.raises(TabularError) as exc:
        start_experiment(actor=physician, dataset=dataset, config=QUICK)
    assert exc.value.http_status == 403 and TabularExperiment.objects.count() == 0


def test_the_celery_task_is_thin_and_calls_the_service(admin_user, dataset, model_dir):
    from workers.training import run_tabular_experiment

    exp = start_experiment(actor=admin_user, dataset=dataset, config={**QUICK, "algorithms": ["naive_bayes"]})
    # Eager apply in the test's thread: Celery's guard against result.get() inside a task looks at
    # a thread-local task stack that an earlier in-process task test may leave non-empty.
    assert run_tabular_experiment.apply(args=[exp.pk]).get(disable_sync_subtasks=False) == JobStatus.SUCCEEDED
    assert run_tabular_experiment.apply(args=[exp.pk]).get(disable_sync_subtasks=False) == "skipped"


@pytest.mark.slow
def test_in_a_child_process_progress_cancellation_and_data_errors_cross_over(
    admin_user, dataset, model_dir, settings, monkeypatch
):
    """DEEPMED_TRAINING_IN_CHILD_PROCESS (embedded mode's default): the grid search runs in a child;
    its progress is stored here, a data error keeps its code, a cancel stops the child."""
    settings.DEEPMED_TRAINING_IN_CHILD_PROCESS = True
    done = execute_experiment(start_experiment(actor=admin_user, dataset=dataset, config=QUICK).pk)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert get_experiment(done.pk).progress["event"] == "done" and load_model(done.model_dir)

    refused = start_experiment(actor=admin_user, dataset=dataset, config={**QUICK, "exclude": ["glucose", "nope"]})
    assert execute_experiment(refused.pk).error.startswith("unknown_column")

    import apps.tabular.services as services

    real = services.heartbeat_job

    def cancel_then_beat(job, **kw):
        cancel_job(TabularExperiment.objects.get(pk=job.pk), actor=admin_user)
        real(job, **kw)

    monkeypatch.setattr(services, "heartbeat_job", cancel_then_beat)
    cancelled = execute_experiment(start_experiment(actor=admin_user, dataset=dataset, config=QUICK).pk)
    assert cancelled.status == JobStatus.CANCELLED and not cancelled.model_dir
