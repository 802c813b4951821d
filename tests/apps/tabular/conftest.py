"""Tabular-lab fixtures: MLflow points at a throw-away store in this test's tmp dir and is off
(a run costs seconds); `mlflow_store` turns tracking on for the tests that check it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tabular_isolated(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    settings.DEEPMED_TABULAR_TRACKING = False
    (tmp_path / "mlflow").mkdir(exist_ok=True)


@pytest.fixture
def mlflow_store(settings):
    """A real local MLflow store (SQLite + file artefacts beside it) with tracking on."""
    settings.DEEPMED_TABULAR_TRACKING = True
    return settings.MLFLOW_TRACKING_URI


@pytest.fixture
def lenient_gates(settings):
    settings.DEEPMED_TABULAR_GATE_F1_FLOOR = 0.0
    settings.DEEPMED_TABULAR_GATE_ROC_AUC_FLOOR = 0.0
    settings.DEEPMED_TABULAR_GATE_CV_STD_CEILING = 1.0
