"""Filter and wrapper selection inside the pipeline: the informative features win, and the report says so."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.tabular.io import binary_target
from ml_core.tabular.select import SelectConfig, selection_report
from ml_core.tabular.testing import make_frame, quick_config
from ml_core.tabular.train import build_pipeline


def fitted(select: SelectConfig):
    X, y, _ = binary_target(make_frame(240, seed=3), "target")
    pipe = build_pipeline(quick_config(select=select), "logistic_regression")
    return pipe.fit(X, y)


@pytest.mark.parametrize(
    "select",
    [
        SelectConfig(method="filter", score="anova_f", k=2),
        SelectConfig(method="filter", score="mutual_info", k=2),
        SelectConfig(method="filter", score="chi2", k=2),
    ],
    ids=["anova_f", "mutual_info", "chi2"],
)
def test_filter_keeps_the_informative_features(select):
    report = selection_report(fitted(select))
    kept = {f["feature"] for f in report["features"] if f["selected"]}
    assert report["n_selected"] == 2 and len(kept) == 2
    assert "glucose" in kept and "noise" not in kept
    scores = {f["feature"]: f["score"] for f in report["features"]}
    assert scores["glucose"] > scores["noise"]
    assert select.score.replace("anova_f", "f_classif").split("_")[0] in report["method"]


def test_filter_fraction_and_none():
    pipe = fitted(SelectConfig(method="filter", fraction=0.5))
    report = selection_report(pipe)
    assert report["n_selected"] == pytest.approx(report["n_encoded"] / 2, abs=1)
    none = selection_report(fitted(SelectConfig(method="none")))
    assert none["method"] == "none" and all(f["selected"] for f in none["features"])


@pytest.mark.parametrize("wrapper", ["rfecv", "sequential"])
def test_wrapper_selects_glucose_and_reports_ranks(wrapper):
    select = SelectConfig(method="wrapper", wrapper=wrapper, k=2)
    report = selection_report(fitted(select))
    kept = [f["feature"] for f in report["features"] if f["selected"]]
    assert "glucose" in kept
    assert report["method"] == {"rfecv": "RFECV", "sequential": "SequentialFeatureSelector"}[wrapper]
    if wrapper == "rfecv":
        ranks = {f["feature"]: f["rank"] for f in report["features"]}
        assert ranks["glucose"] == 1 and max(ranks.values()) >= 1


def test_selector_sits_between_encoding_and_the_model():
    pipe = fitted(SelectConfig(k=3))
    assert list(pipe.named_steps) == ["clean", "encode", "select", "resample", "model"]
    assert pipe.named_steps["model"].coef_.shape[1] == 3
    assert np.isfinite(pipe.predict_proba(make_frame(40, seed=9).drop(columns=["target"]).iloc[:5])).all()
