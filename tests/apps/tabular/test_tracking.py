"""Every experiment is an MLflow run in the configured store (here a real SQLite store in
tmp_path): params, each algorithm's CV results, test metrics, plots, the dataset's sha256 and
profile; its model directory is registered as a version of tabular-<name>, and the champion
alias follows promotion and rollback. A broken store does not fail the experiment."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from apps.jobs.models import JobStatus
from apps.tabular import selectors, services
from apps.tabular.services import execute_experiment, start_experiment, upload_dataset
from ml_core import tracking
from ml_core.tabular.testing import make_frame

pytestmark = pytest.mark.django_db

QUICK = {"grid": "quick", "folds": 3, "permutation_repeats": 1, "algorithms": ["logistic_regression", "naive_bayes"]}


@pytest.fixture
def dataset(admin_user, settings, tmp_path):
    settings.DEEPMED_MODEL_DIR = tmp_path / "models"
    return upload_dataset(actor=admin_user, name="Risk", data=make_frame(120, seed=2).to_csv(index=False).encode())


def run_one(admin_user, dataset, config=QUICK):
    return execute_experiment(start_experiment(actor=admin_user, dataset=dataset, config=config).pk)


def test_experiment_is_an_mlflow_run_with_its_model_registered(admin_user, dataset, mlflow_store, lenient_gates):
    from mlflow.tracking import MlflowClient

    exp = run_one(admin_user, dataset)
    assert exp.status == JobStatus.SUCCEEDED and exp.tracking_error == ""
    assert exp.mlflow_run_id and exp.mlflow_version == "1" and exp.result["tracking"]["logged"] is True
    client = MlflowClient(tracking_uri=mlflow_store)
    run = client.get_run(exp.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset_sha256"] == dataset.sha256 and run.data.tags["deepmed.experiment"] == str(exp.pk)
    assert run.data.params["grid"] == "quick" and run.data.params["target"] == "target"
    for algo in QUICK["algorithms"]:
        assert run.data.metrics[f"cv.{algo}.roc_auc.mean"] == pytest.approx(exp.result["algorithms"][algo]["cv_mean"])
        assert f"test.{algo}.f1_macro" in run.data.metrics
    artefacts = {a.path for a in client.list_artifacts(exp.mlflow_run_id)}
    assert {"cv_results.json", "dataset_profile.json", "summary.json", "plots", "package"} <= artefacts
    plots = {a.path for a in client.list_artifacts(exp.mlflow_run_id, "plots")}
    assert plots and all(p.endswith(".png") for p in plots)
    profile = client.download_artifacts(exp.mlflow_run_id, "dataset_profile.json")
    assert '"rows"' in Path(profile).read_text()

    # the champion alias follows promotion and rollback in MLflow's registry
    second = run_one(admin_user, dataset)
    assert (second.model_version, second.mlflow_version) == (2, "2")
    services.promote_experiment(actor=admin_user, experiment=exp)
    services.promote_experiment(actor=admin_user, experiment=second)
    assert tracking.get_alias_version(mlflow_store, "tabular-risk", "champion") == "2"
    services.rollback_model(actor=admin_user, name="risk")
    assert tracking.get_alias_version(mlflow_store, "tabular-risk", "champion") == "1"


def test_a_tracking_failure_is_recorded_and_the_experiment_still_succeeds(
    admin_user, dataset, settings, tmp_path, caplog
):
    settings.DEEPMED_TABULAR_TRACKING = True
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{blocker / 'mlflow.db'}"
    exp = run_one(admin_user, dataset, {**QUICK, "algorithms": ["naive_bayes"]})
    assert exp.status == JobStatus.SUCCEEDED
    assert exp.tracking_error and exp.mlflow_run_id == "" and exp.result["tracking"]["logged"] is False
    assert "MLflow tracking failed" in caplog.text
    assert exp.model_version == 1 and selectors.list_versions("risk").get() == exp  # still registered locally
