"""Fixtures for the tabular tests: generated frames (ml_core.tabular.testing), no real data."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_core.tabular.testing import make_frame, quick_config


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="session")
def trained_small():
    """One quick training shared by the artefact/CLI tests (two algorithms, 3 folds)."""
    from ml_core.tabular.train import train

    return train(make_frame(200, seed=1), quick_config(algorithms=("logistic_regression", "random_forest")))
