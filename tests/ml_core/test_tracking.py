"""MLflow tracking + registry against a throw-away SQLite store."""

from __future__ import annotations

import json

import pytest

from ml_core import tracking
from ml_core.package import load_package_meta

pytest.importorskip("mlflow")


@pytest.fixture()
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_register_alias_and_download_round_trip(store, tiny_package, tmp_path):
    first = tracking.register_package(store, tiny_package, "cxr-test", alias="champion")
    name, version = tracking.register_package(store, tiny_package, "cxr-test", alias="challenger")
    assert (name, first.version, version) == ("cxr-test", "1", "2")
    assert tracking.get_alias_version(store, "cxr-test", "champion") == "1"
    assert tracking.get_alias_version(store, "cxr-test", "challenger") == "2"

    tracking.set_alias(store, "cxr-test", version, "champion")  # promotion moves the alias
    assert tracking.get_alias_version(store, "cxr-test", "champion") == "2"
    assert tracking.get_alias_version(store, "cxr-test", "nonexistent") is None
    listed = tracking.list_versions(store, "cxr-test")
    assert [v.version for v in listed] == ["1", "2"]
    assert "champion" in listed[1].aliases and listed[0].run_id

    local = tracking.download_package(store, "models:/cxr-test@champion", dst=tmp_path / "dl")
    assert local == tmp_path / "dl"
    assert load_package_meta(local).classes == load_package_meta(tiny_package).classes
    assert (local / "model.onnx").read_bytes() == (tiny_package / "model.onnx").read_bytes()


def test_training_run_logs_params_epochs_and_manifest(store, tmp_path):
    from types import SimpleNamespace

    import mlflow

    result = SimpleNamespace(
        config={"architecture": "cxr_tiny", "epochs": 2},
        manifest_sha256="ab" * 32,
        history=[
            {"epoch": 1, "train_loss": 1.0, "val_macro_f1": 0.5},
            {"epoch": 2, "train_loss": 0.7, "val_macro_f1": 0.6},
        ],
        best_val_macro_f1=0.6,
        best_epoch=2,
    )
    plot = tmp_path / "roc.png"
    plot.write_bytes(b"\x89PNG fake")
    run_id = tracking.log_training_run(
        store, result, test_metrics={"macro_f1": 0.55, "per_class": {"A": {"f1": 0.5}}}, plots=[plot]
    )
    client = mlflow.tracking.MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.params["train.architecture"] == "cxr_tiny"
    assert run.data.tags["dataset_manifest_sha256"] == "ab" * 32
    assert run.data.tags["code_revision"]
    assert run.data.metrics["test.macro_f1"] == pytest.approx(0.55)
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.7)]
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/roc.png"]
    assert json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/test_metrics.json"))["macro_f1"] == 0.55


def test_model_ref_parsing():
    assert tracking.parse_model_ref("models:/cxr@champion") == ("cxr", None, "champion")
    assert tracking.parse_model_ref("models:/cxr/3") == ("cxr", "3", None)
    with pytest.raises(ValueError):
        tracking.parse_model_ref("runs:/abc/model")


def test_per_source_metric_names_are_made_acceptable_to_mlflow(tmp_path):
    """Provenance source names carry quotes and brackets; MLflow refuses those in metric names."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from ml_core import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = {
        "per_source": {
            "NIH ChestX-ray8 'No Finding' (selection of Ozturk et al. 2020)": {"accuracy": 0.5},
            "Kermany et al. 2018 paediatric CXR (Guangzhou)": {"n": 161},
        }
    }
    with tracking.start_run(uri, experiment="names") as run:
        run.log_metrics(metrics)
    logged = MlflowClient(uri).get_run(run.run_id).data.metrics
    assert logged == {
        "per_source.NIH_ChestX-ray8_No_Finding_selection_of_Ozturk_et_al.2020.accuracy": 0.5,
        "per_source.Kermany_et_al.2018_paediatric_CXR_Guangzhou.n": 161.0,
    }
