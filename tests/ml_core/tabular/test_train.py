"""Training: leak-free folds (imputer, scaler, selector and SMOTE fitted on each fold's training
rows only), imbalance strategy, threshold, progress events, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_selection import f_classif
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split

from ml_core.tabular import models
from ml_core.tabular.clean import CleanConfig
from ml_core.tabular.evaluate import binary_metrics
from ml_core.tabular.io import TabularDataError, binary_target
from ml_core.tabular.testing import make_frame, quick_config
from ml_core.tabular.train import build_pipeline, choose_imbalance, train

SEEN: list[tuple] = []


class Recorder(ClassifierMixin, BaseEstimator):
    """Records the class counts it is fitted on and the rows it is asked about."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y):
        SEEN.append(("fit", len(y), int(np.sum(y))))
        self.classes_ = np.array([0, 1])
        self.w_ = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
        return self

    def predict_proba(self, X):
        SEEN.append(("predict", len(X)))
        p = np.clip(np.c_[X, np.ones(len(X))] @ self.w_, 0.01, 0.99)
        return np.c_[1 - p, p]


@pytest.fixture
def recorder(monkeypatch):
    SEEN.clear()
    algo = models.Algorithm(
        "recorder", lambda seed, cw: Recorder(), full={"alpha": [1.0]}, quick={"alpha": [1.0, 2.0]}, class_weight=False
    )
    monkeypatch.setitem(models.ALGORITHMS, "recorder", algo)
    return SEEN


def expected_folds(frame: pd.DataFrame, cfg, n_folds: int):
    _, y, _ = binary_target(frame, "target")
    _, _, y_train, _ = train_test_split(np.zeros(len(y)), y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed)
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=cfg.seed).split(np.zeros(len(y_train)), y_train)
    return y_train, [(y_train[tr], y_train[va]) for tr, va in folds]


def test_smote_resamples_only_the_training_part_of_each_fold(recorder):
    frame = make_frame(240, seed=2, positive_share=0.25)
    cfg = quick_config(algorithms=("recorder",), imbalance="auto", permutation_repeats=1)
    result = train(frame, cfg)
    assert result.imbalance["strategy"] == "smote"
    y_train, folds = expected_folds(frame, cfg, result.split["folds"])
    fits = [s for s in recorder if s[0] == "fit"]
    # two grid points x 3 folds, then the refit on the whole training split
    expected = [(2 * int((tr == 0).sum()), int((tr == 0).sum())) for tr, _ in folds] * 2
    expected.append((2 * int((y_train == 0).sum()), int((y_train == 0).sum())))
    assert [(n, pos) for _, n, pos in fits] == expected  # balanced, and more rows than the fold had
    assert all(n > len(tr) for (n, _), (tr, _) in zip(expected, folds))
    # the validation folds are scored as they are: no synthetic row is ever predicted
    validation = [s[1] for s in recorder if s[0] == "predict"][: 2 * len(folds)]
    assert validation == [len(va) for _, va in folds] * 2
    assert result.imbalance["smote_k_neighbors"] == 5


def test_without_resampling_the_model_sees_the_fold_as_it_is(recorder):
    frame = make_frame(240, seed=2, positive_share=0.25)
    cfg = quick_config(algorithms=("recorder",), imbalance="none")
    train(frame, cfg)
    _, folds = expected_folds(frame, cfg, 3)
    fits = [(n, pos) for _, n, pos in (s for s in recorder if s[0] == "fit")][:3]
    assert fits == [(len(tr), int(tr.sum())) for tr, _ in folds]


def test_imputer_scaler_and_selector_statistics_come_from_the_fold_training_rows_only():
    frame = make_frame(200, seed=4)
    X, y, _ = binary_target(frame, "target")
    cfg = quick_config(imbalance="smote")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    cv = cross_validate(
        build_pipeline(cfg, "logistic_regression", "smote"), X, y, cv=folds, return_estimator=True, return_indices=True
    )
    for est, train_idx, val_idx in zip(cv["estimator"], cv["indices"]["train"], cv["indices"]["test"]):
        cleaned = est.named_steps["clean"].transform(X.iloc[train_idx])
        encode = est.named_steps["encode"]
        names = list(encode.transformers_[0][2])
        num = encode.named_transformers_["num"]
        medians = dict(zip(names, num.named_steps["impute"].statistics_))
        means = dict(zip(names, num.named_steps["scale"].mean_))
        assert medians["bmi"] == pytest.approx(cleaned["bmi"].median())  # zeros were missing, fold rows only
        # a continuous column: its median over all rows differs, so a leak would show
        assert medians["noise"] == pytest.approx(cleaned["noise"].median())
        assert medians["noise"] != pytest.approx(X["noise"].median(), abs=1e-12)
        assert medians["noise"] != pytest.approx(X["noise"].iloc[val_idx].median(), abs=1e-12)
        filled = cleaned[names].fillna(pd.Series(medians))
        assert means["glucose"] == pytest.approx(filled["glucose"].mean())
        encoded = encode.transform(cleaned)
        scores, _ = f_classif(encoded, y[train_idx])
        assert np.allclose(est.named_steps["select"].scores_, scores, equal_nan=True)


def test_imbalance_choice_is_recorded_with_its_reason():
    cfg = quick_config()
    small = choose_imbalance(np.array([0] * 70 + [1] * 30), cfg)
    large = choose_imbalance(np.array([0] * 7000 + [1] * 3000), cfg)
    balanced = choose_imbalance(np.array([0] * 50 + [1] * 50), cfg)
    assert (small["strategy"], large["strategy"], balanced["strategy"]) == ("smote", "class_weight", "none")
    assert "rows" in large["reason"] and large["minority_share"] == 0.3
    weighted = build_pipeline(cfg, "random_forest", "class_weight")
    assert weighted.named_steps["model"].class_weight == "balanced"
    assert build_pipeline(cfg, "knn", "class_weight").named_steps["resample"] == "passthrough"


def test_train_chooses_by_cv_and_reports_every_algorithm(trained_small):
    r = trained_small
    assert set(r.algorithms) == {"logistic_regression", "random_forest"}
    assert r.chosen == max(r.algorithms, key=lambda a: r.algorithms[a]["cv"]["roc_auc"]["mean"])
    for a in r.algorithms.values():
        assert {
            "accuracy",
            "f1_macro",
            "f1_weighted",
            "precision_macro",
            "recall_weighted",
            "roc_auc",
            "pr_auc",
            "brier",
        } <= set(a["test"])
        assert 0 <= a["cv"]["roc_auc"]["std"] < 0.5
    assert r.test["roc_auc"] > 0.8  # the generated target is learnable
    assert r.split["test_rows"] == 40 and sum(r.split["train_counts"]) == 160
    assert r.quality["rules"]["zero_as_missing"]["columns"]["bmi"] > 0
    assert r.permutation_importance[0]["feature"] == "glucose"


def test_threshold_moves_the_labels_not_the_probabilities(trained_small):
    y, p = trained_small.test_labels, trained_small.test_probabilities
    low, high = binary_metrics(y, p, 0.2), binary_metrics(y, p, 0.9)
    assert low["roc_auc"] == high["roc_auc"]
    assert sum(r[1] for r in low["confusion_matrix"]) > sum(r[1] for r in high["confusion_matrix"])


def test_progress_events_name_algorithm_grid_point_and_fold():
    events = []
    train(make_frame(120), quick_config(algorithms=("decision_tree",), progress=events.append))
    folds = [e for e in events if e["event"] == "fold"]
    assert events[0] == {"event": "algorithm_start", "algorithm": "decision_tree", "grid_points": 1, "folds": 3}
    assert [(e["grid_point"], e["folds_done"]) for e in folds] == [(1, 1), (1, 2), (1, 3)]
    assert events[-1]["event"] == "done" and events[-1]["chosen"] == "decision_tree"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda f: f.assign(empty=np.nan), "empty_column"),
        (lambda f: f.iloc[:15], "too_few_rows"),
        (lambda f: f.assign(target=0), "one_class_target"),
    ],
)
def test_refusals(mutate, code):
    with pytest.raises(TabularDataError) as exc:
        train(mutate(make_frame(60)), quick_config(algorithms=("naive_bayes",)))
    assert exc.value.code == code


def test_all_missing_column_can_be_dropped_instead():
    cfg = quick_config(algorithms=("naive_bayes",), clean=CleanConfig(empty_columns="drop"))
    r = train(make_frame(80).assign(empty=np.nan), cfg)
    assert r.split["empty_columns_dropped"] == ["empty"]


class Stop(Exception):
    pass


def test_an_exception_from_the_progress_callback_ends_training():
    """A cancel raised from a fold event must not be swallowed by GridSearchCV as a failed score."""
    events = []

    def progress(event):
        events.append(event)
        if event["event"] == "fold":
            raise Stop

    with pytest.raises(Stop):
        train(make_frame(120), quick_config(algorithms=("naive_bayes", "decision_tree"), progress=progress))
    assert [e["event"] for e in events] == ["algorithm_start", "fold"]  # one event, then silence, then the raise
