"""Metrics, expected calibration error and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.calibrate import fit_temperature, nll
from ml_core.evaluate import compute_metrics, evaluate_logits, expected_calibration_error
from ml_core.serve import softmax

CLASSES = ["COVID-19", "NORMAL", "PNEUMONIA"]


def test_ece_is_zero_when_confidence_matches_accuracy_and_measures_the_gap():
    # 4 predictions at confidence 0.75, 3 of them right -> perfectly calibrated
    probs = np.array([[0.75, 0.25, 0.0]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    # all wrong at 0.9 confidence -> ECE 0.9
    assert expected_calibration_error(np.array([[0.9, 0.1, 0.0]] * 3), np.array([1, 1, 2])) == pytest.approx(0.9)


def test_metrics_have_the_contract_keys_and_correct_values():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]]
    )
    m = compute_metrics(labels, probs, CLASSES, sources=["a", "a", "b", "b", "b", "c"])
    for key in ("n", "accuracy", "macro_f1", "weighted_f1", "roc_auc_macro", "ece", "per_class", "confusion_matrix"):
        assert key in m
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert m["per_class"]["NORMAL"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_source"]["b"]["accuracy"] == pytest.approx(2 / 3) and m["per_source"]["a"]["n"] == 2
    assert 0.9 < m["roc_auc_macro"] <= 1.0


def test_temperature_scaling_fixes_overconfidence_without_changing_predictions():
    rng = np.random.default_rng(0)
    n, true_t = 3000, 3.0
    logits = rng.normal(0, 4, size=(n, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits, true_t)])  # labels drawn at T=3
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.15)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    m = evaluate_logits(logits, labels, CLASSES, temperature=t)
    assert m["ece"] < m["ece_uncalibrated"] and m["ece"] < 0.03
    assert m["accuracy"] == evaluate_logits(logits, labels, CLASSES)["accuracy"]


def test_reliability_bins_are_the_ones_ece_is_computed_from():
    from ml_core.evaluate import DEFAULT_ECE_BINS, reliability_bins

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(500, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits, 2.0)])
    probs = softmax(logits)
    rel = reliability_bins(probs, labels)
    assert rel["n_bins"] == DEFAULT_ECE_BINS == 15 and sum(rel["count"]) == 500
    by_hand = sum(c * abs(a - f) for c, a, f in zip(rel["count"], rel["accuracy"], rel["confidence"])) / 500
    assert expected_calibration_error(probs, labels) == pytest.approx(by_hand)
    assert all(
        lo <= f <= hi
        for f, lo, hi in zip(rel["confidence"], [b / 15 for b in rel["bin"]], [(b + 1) / 15 for b in rel["bin"]])
    )


def test_roc_points_carry_each_classes_auc():
    from sklearn.metrics import roc_auc_score

    from ml_core.evaluate import roc_points

    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]]
    )
    roc = roc_points(probs, labels, CLASSES)
    assert roc["NORMAL"]["auc"] == pytest.approx(roc_auc_score(labels == 1, probs[:, 1]))
    assert roc["COVID-19"]["fpr"][0] == 0.0 and roc["COVID-19"]["tpr"][-1] == 1.0
    assert roc_points(probs[:2], labels[:2], CLASSES) == {}  # one outcome only: no curve
