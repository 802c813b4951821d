"""A tabular run in MLflow (throw-away SQLite store): params, per-algorithm CV/test metrics, the
dataset hash, the model directory registered and downloadable as the same loadable model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlflow")

from ml_core import tracking
from ml_core.tabular.artifacts import load_model, save_model
from ml_core.tabular.schema import validate_rows
from ml_core.tabular.testing import make_frame
from ml_core.tabular.tracking import log_tabular_run


def test_run_is_logged_and_registered(trained_small, tmp_path):
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = save_model(trained_small, tmp_path / "m", name="risk")
    run_id = log_tabular_run(store, trained_small, model_dir, register_as="tabular-risk", alias="challenger")
    run = mlflow.tracking.MlflowClient(store).get_run(run_id)
    assert run.data.tags["dataset_sha256"] == trained_small.dataset_sha256
    assert run.data.tags["chosen_algorithm"] == trained_small.chosen and run.data.tags["kind"] == "tabular"
    assert run.data.params["scoring"] == "roc_auc" and run.data.params["select.method"] == "filter"
    metrics = run.data.metrics
    for algo in ("logistic_regression", "random_forest"):
        assert metrics[f"cv.{algo}.roc_auc.mean"] == pytest.approx(
            trained_small.algorithms[algo]["cv"]["roc_auc"]["mean"]
        )
        assert f"test.{algo}.f1_macro" in metrics and f"cv.{algo}.roc_auc.std" in metrics
    assert tracking.get_alias_version(store, "tabular-risk", "challenger") == "1"
    local = tracking.download_package(store, "models:/tabular-risk@challenger", dst=tmp_path / "dl")
    model = load_model(local)
    X = validate_rows(model.schema, make_frame(30, seed=3).drop(columns=["target"]))
    assert np.array_equal(model.predict_proba(X), trained_small.pipeline.predict_proba(X)[:, 1])
