"""The shipped starter package: loads offline, is small, and measures what its model card says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.cli import STARTER_PACKAGE
from ml_core.package import load_package_meta
from ml_core.serve import load_predictor
from ml_core.testing import make_xray_like_pixels

DATASET_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cxr"
MODEL_CARD = STARTER_PACKAGE.parent / "MODEL_CARD.md"


def test_starter_package_is_complete_small_and_serves():
    meta = load_package_meta(STARTER_PACKAGE)
    assert meta.classes == ["COVID-19", "NORMAL", "PNEUMONIA"]
    assert meta.format in ("fp32", "int8-dynamic", "int8-static") and meta.temperature > 0
    assert meta.dataset_manifest_sha256 and meta.ood is not None
    total = sum(p.stat().st_size for p in STARTER_PACKAGE.rglob("*") if p.is_file())
    assert total < 30_000_000  # v3/v4: fp32 ONNX 13.5 MB + fp16 torch weights 6.9 MB (warm start) + OOD 6.6 MB
    result = load_predictor(STARTER_PACKAGE).predict(make_xray_like_pixels(256, seed=1))
    assert result.label in meta.classes and result.heatmap_png is not None


def test_model_card_reports_the_packaged_test_metrics():
    test = load_package_meta(STARTER_PACKAGE).metrics["test"]
    card = MODEL_CARD.read_text(encoding="utf-8")
    assert f"macro-F1 **{test['macro_f1']:.3f}**" in card
    assert f"ROC-AUC (macro OvR) **{test['roc_auc_macro']:.3f}**" in card
    assert "Source confounding" in card and "CC BY 4.0" in card


@pytest.mark.dataset
def test_starter_model_reproduces_its_card_on_the_test_split():
    from ml_core.evaluate import evaluate_package

    recorded = load_package_meta(STARTER_PACKAGE).metrics["test"]
    measured = evaluate_package(STARTER_PACKAGE, DATASET_DIR, split="test").to_dict()
    assert measured["n"] == recorded["n"] == 398
    for key in ("accuracy", "macro_f1", "roc_auc_macro", "ece"):
        assert measured[key] == pytest.approx(recorded[key], abs=2e-3), key
    assert set(measured["per_source"]) == set(recorded["per_source"])
    # v4.3/v4.4 meet the transfer-learning issue's macro-F1, AUC, recall and ECE targets (see the card);
    # 7-bit int8 weights compute the same logits on every x86 host (v4.2's 8-bit file did not).
    assert measured["roc_auc_macro"] >= 0.985
    assert measured["macro_f1"] >= 0.94 > 0.930  # above starter v3.1/v3.2 (0.930)
    assert min(c["recall"] for c in measured["per_class"].values()) >= 0.92
    assert measured["ece"] <= 0.02
    # adults: every source >= 0.86 except NIH 'No Finding' (0.846: 22 of 26, one image short of 0.85)
    per_source = sorted(s["accuracy"] for s in measured["per_source"].values())
    assert per_source[0] >= 0.84 and per_source[1] >= 0.86
    meta = load_package_meta(STARTER_PACKAGE)
    assert meta.class_bias is not None and len(meta.extra["averaged_from"]) == 3  # the v4 soup


@pytest.mark.dataset
def test_starter_ood_gate_passes_held_out_xrays_and_serves_int8_within_a_point_of_fp32():
    """The OOD gate (since v4.1: every training image, threshold at the 99.5th validation percentile)
    passes 98.99% of test X-rays (v4's: 98.0%). v4.3 and v4.4 serve int8-static (7-bit weights) with
    their most quantisation-sensitive node in fp32, 0.2-0.5 validation points below fp32; v4.4 reads one
    grey channel (its stem folded)."""
    from ml_core.data import load_all_pixels, load_dataset

    predictor = load_predictor(STARTER_PACKAGE)
    pixels = load_all_pixels(load_dataset(DATASET_DIR).split("test"))
    flagged = [r.is_out_of_distribution for r in predictor.predict_batch(pixels)]
    assert 1 - sum(flagged) / len(flagged) >= 0.985  # 394 of 398
    candidates = predictor.meta.metrics["format_candidates"]
    assert predictor.meta.format == "int8-static"
    assert candidates["int8-static"]["val_macro_f1"] >= candidates["fp32"]["val_macro_f1"] - 0.01
    assert len(predictor.meta.metrics["int8_sensitivity"]["keep_fp32"]) == 1
    assert candidates["int8-static"]["reduce_range"] is True
    assert predictor.meta.preprocess.channels == 1 and predictor.session.get_inputs()[0].shape[1] == 1


def test_starter_ood_gate_refuses_generated_non_xrays_it_was_not_chosen_on():
    """The gate (Mahalanobis on mean+std pooled features, since v3.2) was chosen on the build's
    generated set (seed 0); on another seed it still refuses >= 97% (the mean-pooled v3.1 gate: ~95.5%)."""
    from ml_core.ood import synthetic_outliers

    predictor = load_predictor(STARTER_PACKAGE)
    assert predictor.meta.ood["pooling"] == "mean+std"
    images = [img for imgs in synthetic_outliers(25, seed=1).values() for img in imgs]
    refused = [r.is_out_of_distribution for r in predictor.predict_batch(images, with_heatmap=False)]
    assert sum(refused) / len(refused) >= 0.97
