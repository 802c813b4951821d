import numpy as np
import pytest

from ml_core.ood import fit_mahalanobis, load_ood, pooled_features, save_ood


def _clusters(n, rng):
    labels = rng.integers(0, 2, n)
    centres = np.array([[3.0] * 8, [-3.0] * 8])
    return centres[labels] + rng.normal(size=(n, 8)), labels


def test_threshold_is_the_in_distribution_percentile():
    rng = np.random.default_rng(0)
    train, labels = _clusters(400, rng)
    calib, _ = _clusters(1000, rng)
    model = fit_mahalanobis(train, labels, percentile=95.0, calibration=calib)
    assert np.mean(model.is_out_of_distribution(calib)) == pytest.approx(0.05, abs=0.01)
    fresh, _ = _clusters(2000, rng)
    assert np.mean(model.is_out_of_distribution(fresh)) < 0.10
    far = np.full((5, 8), 20.0)
    between = np.zeros((5, 8))  # between the class means: only class-conditional means flag it
    assert model.is_out_of_distribution(far).all()
    assert model.is_out_of_distribution(between).all()


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    model = fit_mahalanobis(rng.normal(size=(50, 4)))
    stub = save_ood(model, tmp_path)
    loaded = load_ood(tmp_path, stub)
    x = rng.normal(size=(10, 4))
    np.testing.assert_allclose(loaded.score(x), model.score(x), rtol=1e-4)
    assert loaded.threshold == model.threshold
    assert load_ood(tmp_path, None) is None


def test_pooled_features_is_global_average():
    f = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(pooled_features(f), f.mean(axis=(2, 3)))
