"""The shared clinical datasets (../shared/data/tabular): the profile finds what their README
documents, and a quick training learns them. Skipped when the folder is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.tabular.io import read_table
from ml_core.tabular.profile import profile
from ml_core.tabular.testing import quick_config
from ml_core.tabular.train import train

TABULAR_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "tabular"

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.skipif(
        not TABULAR_DIR.is_dir(), reason=f"needs the tabular datasets at {TABULAR_DIR}, which is absent"
    ),
]


def frame(name: str):
    return read_table(TABULAR_DIR / name).frame


def test_pima_zeros_are_found_and_treated_as_missing():
    report = profile(frame("pima_diabetes/pima_diabetes.csv"), "target")
    # the counts the dataset README measured on the original file
    assert report["suspicious_zeros"] == {
        "Glucose": 5,
        "BloodPressure": 35,
        "SkinThickness": 227,
        "Insulin": 374,
        "BMI": 11,
    }
    assert report["target"]["counts"] == {"0": 500, "1": 268}


def test_kidney_missing_cells_and_stray_whitespace():
    report = profile(frame("chronic_kidney_disease/ckd.csv"), "target")
    assert report["missing_cells"] == 1012 and report["rows"] == 400
    assert sum(c["whitespace_cells"] for c in report["column_profiles"]) == 11
    assert {"pcv", "wbcc"} <= set(report["kinds"]["numeric"])  # '\t6200' did not make them text


def test_heart_sites_missing_and_zero_coded_cholesterol():
    report = profile(frame("heart_disease/heart_all_sites.csv"), "target")
    assert report["missing_cells"] == 1759 and report["suspicious_zeros"]["chol"] == 123 + 49


def test_quick_training_on_cleveland_learns_it():
    result = train(
        frame("heart_disease/heart_cleveland.csv"),
        quick_config(folds=5, algorithms=("logistic_regression", "naive_bayes")),
    )
    assert result.split["folds"] == 5 and result.split["rows"] == 303
    assert result.test["roc_auc"] > 0.85 and result.test["accuracy"] > 0.75
