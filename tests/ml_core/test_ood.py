import numpy as np
import pytest

from ml_core.ood import OODModel, fit_mahalanobis, load_ood, pooled_features, save_ood


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
    np.testing.assert_allclose(loaded.score(x), model.score(x), rtol=2e-3)  # float16 on disk
    assert loaded.threshold == model.threshold
    assert load_ood(tmp_path, None) is None


def test_pooled_features_is_global_average():
    f = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(pooled_features(f), f.mean(axis=(2, 3)))


def test_mean_std_pooling_puts_the_spatial_deviation_beside_the_mean():
    f = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    pooled = pooled_features(f, "mean+std")
    assert pooled.shape == (2, 6)
    np.testing.assert_allclose(pooled[:, 3:], f.std(axis=(2, 3)))
    with pytest.raises(ValueError, match="unknown pooling"):
        pooled_features(f, "max")


def _maps(n, rng, *, texture: float):
    """Feature maps whose channel averages are alike; ``texture`` is their spatial spread."""
    base = rng.normal(size=(n, 6, 1, 1))
    return base + texture * rng.normal(size=(n, 6, 5, 5))


def test_mean_std_gate_rejects_maps_that_only_differ_in_texture():
    rng = np.random.default_rng(3)
    train, calib = _maps(300, rng, texture=0.1), _maps(300, rng, texture=0.1)
    textured = _maps(50, rng, texture=1.0)  # same averages in expectation, far more spread
    gates = {
        pooling: fit_mahalanobis(
            pooled_features(train, pooling),
            percentile=99.0,
            calibration=pooled_features(calib, pooling),
            pooling=pooling,
        )
        for pooling in ("mean", "mean+std")
    }
    assert gates["mean+std"].is_out_of_distribution(pooled_features(textured, "mean+std")).mean() > 0.95
    assert (gates["mean+std"].score_maps(textured) > gates["mean+std"].threshold).mean() > 0.95
    assert (gates["mean"].score_maps(textured) > gates["mean"].threshold).mean() < 0.5


def test_pooling_round_trips_and_old_stubs_mean_the_average(tmp_path):
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(40, 3, 2, 2))
    model = fit_mahalanobis(pooled_features(maps, "mean+std"), pooling="mean+std")
    stub = save_ood(model, tmp_path)
    assert stub["pooling"] == "mean+std" and stub["feature_dim"] == 6
    loaded = load_ood(tmp_path, stub)
    np.testing.assert_allclose(loaded.score_maps(maps), model.score_maps(maps), rtol=2e-3)
    legacy = {k: v for k, v in save_ood(fit_mahalanobis(pooled_features(maps)), tmp_path).items() if k != "pooling"}
    assert load_ood(tmp_path, legacy).pooling == "mean"


def test_autoencoder_gate_flags_documents_and_round_trips_through_a_package(tmp_path):
    pytest.importorskip("torch")
    import numpy as np

    from ml_core.ood import load_ood, save_ood, synthetic_outliers
    from ml_core.ood_ae import fit_autoencoder
    from ml_core.testing import make_xray_like_pixels

    xrays = [make_xray_like_pixels(96, seed=i) for i in range(60)]
    gate = fit_autoencoder(xrays[:40], xrays[40:], tmp_path / "ae.onnx", epochs=25, percentile=95.0)
    documents = synthetic_outliers(5)["document"]
    assert (gate.score_images(documents) > gate.threshold).all()
    assert (gate.score_images(xrays[40:]) <= gate.threshold).mean() >= 0.9
    stub = save_ood(gate, tmp_path)
    loaded = load_ood(tmp_path, stub)
    np.testing.assert_allclose(loaded.score_images(documents), gate.score_images(documents), rtol=1e-6)
    assert loaded.method == "autoencoder" and loaded.threshold == gate.threshold


def test_precision_is_stored_packed_and_read_back_symmetric(tmp_path):
    rng = np.random.default_rng(5)
    fitted = fit_mahalanobis(rng.normal(size=(200, 12)) * rng.uniform(0.01, 10, size=12))
    # entries beyond float16's range are scaled, not overflowed
    model = OODModel(fitted.means, fitted.precision * 1e5, fitted.threshold, fitted.percentile, fitted.n_fit)
    save_ood(model, tmp_path)
    with np.load(tmp_path / "ood.npz") as arrays:
        assert "precision" not in arrays and arrays["precision_upper"].dtype == np.float16
        assert arrays["precision_upper"].size == 12 * 13 // 2
    loaded = load_ood(tmp_path, save_ood(model, tmp_path))
    np.testing.assert_allclose(loaded.precision, loaded.precision.T)
    x = rng.normal(size=(20, 12))
    np.testing.assert_allclose(loaded.score(x), model.score(x), rtol=2e-3)


def test_packages_with_the_square_float32_precision_still_load(tmp_path):
    rng = np.random.default_rng(6)
    model = fit_mahalanobis(rng.normal(size=(60, 5)))
    stub = save_ood(model, tmp_path)
    np.savez(tmp_path / "ood.npz", means=model.means.astype(np.float32), precision=model.precision.astype(np.float32))
    x = rng.normal(size=(10, 5))
    np.testing.assert_allclose(load_ood(tmp_path, stub).score(x), model.score(x), rtol=1e-4)


def test_score_is_the_distance_to_the_nearest_class_mean():
    """The expanded form x'Px - 2(Px)'m + m'Pm equals the plain distance, class by class."""
    rng = np.random.default_rng(7)
    x, labels = _clusters(120, rng)
    model = fit_mahalanobis(x, labels)
    probe = rng.normal(size=(15, 8)) * 4
    diffs = probe[:, None, :] - model.means[None, :, :]
    plain = np.sqrt(np.einsum("nkd,de,nke->nk", diffs, model.precision, diffs).min(axis=1))
    np.testing.assert_allclose(model.score(probe), plain, rtol=1e-5)  # P is applied in float32


def _served_sized_gate(rng, d=1024, k=3):
    """A gate the size of a served one (pooled mean+std features: positive, correlated), with a
    well-conditioned random precision and a threshold at the 99th percentile of its own features."""
    basis = rng.normal(size=(d, d)) / np.sqrt(d)
    precision = basis @ basis.T + 0.5 * np.eye(d)
    means = np.abs(rng.normal(0.4, 0.2, size=(k, d)))
    features = means[rng.integers(0, k, 400)] + 0.1 * rng.normal(size=(400, d)) @ basis
    model = OODModel(means, precision, threshold=np.inf, percentile=99.0, n_fit=400)
    model.threshold = float(np.percentile(_float64_scores(model, features), 99.0))
    return model, features


def _float64_scores(model, x):
    diffs = x[:, None, :] - model.means[None, :, :]
    return np.sqrt(np.einsum("nkd,de,nke->nk", diffs, model.precision, diffs).min(axis=1))


def test_float32_scores_match_float64_and_keep_the_threshold_decisions():
    rng = np.random.default_rng(8)
    model, features = _served_sized_gate(rng)
    assert model._precision32.dtype == np.float32
    probes = np.vstack([features, features[:50] * rng.uniform(0.5, 2.0, size=(50, 1)), rng.uniform(0, 2, (50, 1024))])
    exact = _float64_scores(model, probes)
    scored = np.concatenate([model.score(row) for row in probes[:20]] + [model.score(probes[20:])])  # 1 row and many
    np.testing.assert_allclose(scored, exact, rtol=1e-4)
    margin = np.abs(exact - model.threshold) / model.threshold
    decided = margin > 1e-4  # the rest sit on the threshold itself, whichever precision
    assert decided.mean() > 0.95
    np.testing.assert_array_equal((scored > model.threshold)[decided], (exact > model.threshold)[decided])


def test_loaded_gates_hold_one_float32_precision(tmp_path):
    rng = np.random.default_rng(9)
    model = fit_mahalanobis(rng.normal(size=(80, 6)))
    loaded = load_ood(tmp_path, save_ood(model, tmp_path))
    assert loaded.precision.dtype == np.float32 and loaded._precision32 is loaded.precision
    assert loaded._means_quad.dtype == np.float64


def test_scoring_restores_the_blas_threads_also_from_concurrent_threads():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    rng = np.random.default_rng(10)
    model, features = _served_sized_gate(rng, d=256)
    before = blas_threads()
    expected = model.score(features[:40])
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda i: model.score(features[i])[0], range(40)))
    np.testing.assert_allclose(rows, expected, rtol=1e-6)
    assert blas_threads() == before
