"""Model-operations fixtures: a tiny generated dataset ({train,val,test}/<CLASS>/*.png), a real
MLflow tracking store (SQLite file + file artifacts in tmp) and settings pointing at both."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from apps.modelops.testing import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("cxr-tiny-data"))


@pytest.fixture
def modelops_settings(settings, tmp_path, tiny_dataset):
    """Real MLflow store in this test's tmp dir; lenient gates (tests tighten the one they check)."""
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.DEEPMED_MODEL_DIR = tmp_path / "models"
    settings.DATA_DIR = tmp_path / "data"
    settings.DEEPMED_BASE_DATASET_DIR = tiny_dataset
    settings.DEEPMED_GATE_F1_TOLERANCE = 1.0
    settings.DEEPMED_GATE_F1_FLOOR = 0.0
    settings.DEEPMED_GATE_RECALL_FLOOR = 0.0
    settings.DEEPMED_GATE_P95_LATENCY_MS = 60_000.0
    settings.DEEPMED_GATE_ONNX_PARITY = 1e-2
    settings.DEEPMED_GATE_REQUIRE_OOD = False
    settings.DEEPMED_RETRAIN_ARCHITECTURE = "cxr_tiny"
    settings.DEEPMED_RETRAIN_TIER = "quick"
    settings.DEEPMED_PACKAGE_FORMAT = "fp32"  # no int8 candidates to build and time
    settings.DEEPMED_OOD_METHOD = "mahalanobis"  # no autoencoder to train
    return settings


@pytest.fixture(scope="session")
def second_package(tmp_path_factory) -> Path:
    """Another RANDOM-WEIGHT tiny package (version 2, other seed): a challenger for shadow tests."""
    from ml_core.testing import make_tiny_package

    return make_tiny_package(tmp_path_factory.mktemp("model-v2") / "cxr-tiny", version="2", seed=7)
