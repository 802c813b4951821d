import math

import numpy as np
import pytest

from ml_core.drift import (
    DriftConfig,
    DriftReference,
    build_reference,
    compute_drift,
    ks_statistic,
    population_stability_index,
)

CLASSES = ["NORMAL", "PNEUMONIA", "COVID19"]


def stream(n: int, *, seed: int, mix=(0.5, 0.35, 0.15), conf=(8.0, 2.0), emb_loc=3.0):
    """Synthetic predictions: labels from `mix`, confidence ~ Beta(conf), embedding distance ~ N(emb_loc, 0.5)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, size=n, p=mix).tolist()
    confidences = rng.beta(*conf, size=n).tolist()
    embedding = rng.normal(emb_loc, 0.5, size=n).tolist()
    return labels, confidences, embedding


@pytest.fixture
def reference() -> DriftReference:
    labels, conf, emb = stream(2000, seed=0)
    return build_reference(labels, conf, CLASSES, emb)


def test_psi_is_zero_for_identical_mixes_and_grows_with_the_shift():
    base = {"a": 0.5, "b": 0.5}
    assert population_stability_index(base, base) == 0.0
    small = population_stability_index(base, {"a": 0.55, "b": 0.45})
    large = population_stability_index(base, {"a": 0.9, "b": 0.1})
    assert 0 < small < 0.1 < 0.25 < large


def test_ks_statistic_matches_the_ecdf_gap():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([0, 0, 0], [1, 1, 1]) == 1.0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_an_unshifted_stream_is_not_flagged(reference, seed):
    report = compute_drift(reference, *stream(300, seed=seed))
    assert not report.drifted, report
    assert report.score < 1.0


def test_a_label_mix_shift_is_detected(reference):
    report = compute_drift(reference, *stream(300, seed=7, mix=(0.15, 0.35, 0.5)))
    assert report.drifted
    assert report.components["label_psi"] > 1.0


def test_a_confidence_shift_is_detected(reference):
    report = compute_drift(reference, *stream(300, seed=8, conf=(3.0, 3.0)))
    assert report.drifted and report.components["confidence_ks"] > 1.0
    assert report.components["label_psi"] < 1.0  # the label mix alone would not have caught it


def test_an_embedding_shift_is_detected(reference):
    report = compute_drift(reference, *stream(300, seed=9, emb_loc=3.6))
    assert report.drifted and report.components["embedding_ks"] > 1.0
    assert report.components["confidence_ks"] < 1.0


def test_a_small_window_gets_no_verdict(reference):
    report = compute_drift(reference, *stream(10, seed=3, mix=(0.0, 0.0, 1.0)), config=DriftConfig(min_samples=30))
    assert not report.enough_data and math.isnan(report.score) and not report.drifted


def test_a_model_without_embedding_reference_uses_the_other_signals():
    labels, conf, _ = stream(500, seed=0)
    ref = build_reference(labels, conf, CLASSES)
    report = compute_drift(ref, *stream(300, seed=11, emb_loc=9.0))
    assert report.embedding_ks is None and "embedding_ks" not in report.components
    assert not report.drifted


def test_reference_round_trips_and_is_bounded():
    labels, conf, emb = stream(5000, seed=0)
    ref = build_reference(labels, conf, CLASSES, emb, max_points=200)
    assert len(ref.confidence) == 200 and ref.n == 5000
    assert DriftReference.from_dict(ref.to_dict()) == ref
    assert sum(ref.label_mix.values()) == pytest.approx(1.0)
