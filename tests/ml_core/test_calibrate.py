"""Bias-corrected temperature scaling: fitting, fallback, serving and recalibrating a package."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ml_core import calibrate
from ml_core.calibrate import fit_bias_corrected_temperature, fit_calibration, fit_temperature, nll
from ml_core.package import load_package_meta, write_package_meta
from ml_core.preprocessing import preprocess
from ml_core.serve import load_predictor, softmax


def _leaning_logits(n: int = 4000, seed: int = 0):
    """Logits of a net that leans away from class 1: labels were drawn at T=2 with bias b."""
    rng = np.random.default_rng(seed)
    true_b = np.array([0.0, 1.5, -1.5])
    logits = rng.normal(0, 4, size=(n, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits, 2.0, true_b)])
    return logits, labels, true_b


def test_bias_corrected_scaling_recovers_the_lean_and_beats_temperature_alone():
    logits, labels, true_b = _leaning_logits()
    t, b = fit_bias_corrected_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.15)
    assert b == pytest.approx(true_b - true_b.mean(), abs=0.25) and b.mean() == pytest.approx(0.0, abs=1e-9)
    t_only = fit_temperature(logits, labels)
    assert nll(logits, labels, t, b) < nll(logits, labels, t_only) - 0.01
    changed = softmax(logits, t, b).argmax(1) != logits.argmax(1)
    assert changed.any()  # unlike temperature scaling, the biases move decisions towards class 1
    assert (softmax(logits, t, b).argmax(1)[changed] == 1).mean() > 0.5


def test_fit_calibration_falls_back_to_temperature_when_a_class_is_small():
    logits, labels, _ = _leaning_logits(n=600)
    full = fit_calibration(logits, labels)
    assert full.method == "bias_corrected" and len(full.class_bias) == 3 and not full.notes
    keep = np.concatenate(
        [np.flatnonzero(labels != 2), np.flatnonzero(labels == 2)[: calibrate.BCTS_MIN_PER_CLASS - 1]]
    )
    small = fit_calibration(logits[keep], labels[keep])
    assert small.method == "temperature" and small.class_bias is None
    assert "bias correction skipped" in small.notes[0]
    assert fit_calibration(logits, labels, "temperature").class_bias is None
    with pytest.raises(ValueError):
        fit_calibration(logits, labels, "isotonic")


def test_served_probabilities_apply_the_packages_class_bias(tiny_package, tmp_path):
    package = tmp_path / "biased"
    shutil.copytree(tiny_package, package)
    meta = load_package_meta(package)
    meta.class_bias = [2.0, -1.0, -1.0]
    write_package_meta(package, meta)
    image = (np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)
    plain, biased = load_predictor(tiny_package), load_predictor(package)
    logits, _ = plain.run(preprocess(image, meta.preprocess))
    expected = softmax(logits, meta.temperature, meta.class_bias)[0]
    got = biased.predict(image, with_heatmap=False)
    assert [got.probabilities[c] for c in biased.classes] == pytest.approx(list(expected))
    assert got.probabilities != plain.predict(image, with_heatmap=False).probabilities


def test_a_class_bias_of_the_wrong_length_is_refused(tiny_package, tmp_path):
    from ml_core.package import PackageError, save_package
    from ml_core.preprocessing import PreprocessConfig

    with pytest.raises(PackageError, match="class_bias"):
        save_package(
            tmp_path / "bad",
            onnx_path=tiny_package / "model.onnx",
            name="x",
            version="1",
            classes=["A", "B", "C"],
            architecture="cxr_tiny",
            preprocess=PreprocessConfig(),
            cam_weights=np.load(tiny_package / "cam_weights.npy"),
            class_bias=[0.5, -0.5],
        )


def test_recalibrating_a_package_refits_on_validation_and_keeps_the_original(trained, tiny_data, tmp_path, monkeypatch):
    from ml_core.data import load_dataset
    from ml_core.model_card import calibration_line
    from ml_core.pipeline import recalibrate_package

    monkeypatch.setattr(calibrate, "BCTS_MIN_PER_CLASS", 1)  # the tiny set has 6 validation images per class
    source = trained[0].package_dir
    before = load_package_meta(source)
    build = recalibrate_package(source, tmp_path / "recal", load_dataset(tiny_data), version="2")
    after = load_package_meta(build.package_dir)
    assert after.version == "2" and after.extra["recalibrated_from"] == {
        "version": before.version,
        "method": "bias_corrected",
        "ood_refitted": False,
    }
    assert after.metrics["calibration"]["method"] == "bias_corrected" and len(after.class_bias) == 3
    assert after.metrics["test"]["class_bias"] == after.class_bias and after.metrics["test"]["n"] == 18
    assert after.model_sha256 == before.model_sha256 and after.ood == before.ood
    assert load_package_meta(source).class_bias is None  # the source package is untouched
    assert "drift_reference" in after.extra
    assert "bias-corrected temperature scaling" in calibration_line(after)
    with pytest.raises(FileExistsError):
        recalibrate_package(source, tmp_path / "recal", load_dataset(tiny_data))


def test_recalibrating_with_refit_ood_compares_both_poolings_and_serves_the_chosen_gate(trained, tiny_data, tmp_path):
    from ml_core.data import load_dataset
    from ml_core.ood import synthetic_outliers
    from ml_core.pipeline import PackageConfig, recalibrate_package

    source = trained[0].package_dir
    cfg = PackageConfig(ood_method="mahalanobis", ood_outliers_per_kind=4)
    build = recalibrate_package(source, tmp_path / "refit", load_dataset(tiny_data), refit_ood=cfg)
    after = load_package_meta(build.package_dir)
    report = after.metrics["ood"]
    assert {"mahalanobis", "mahalanobis_mean_std"} <= set(report) and "autoencoder" not in report
    assert after.ood["pooling"] == ("mean" if report["chosen"] == "mahalanobis" else "mean+std")
    assert after.ood["threshold"] == pytest.approx(report[report["chosen"]]["threshold"])
    assert after.extra["recalibrated_from"]["ood_refitted"] is True
    predictor = load_predictor(build.package_dir)
    assert predictor.ood.pooling == after.ood["pooling"]
    assert predictor.predict(synthetic_outliers(1)["noise"][0], with_heatmap=False).ood_score is not None
