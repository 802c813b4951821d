"""Evaluation: scikit-learn metrics, expected calibration error, per-source accuracy, plots.

``evaluate_package(package_dir, data)`` scores any model package on any ImageFolder
tree / manifest through the serving ``Predictor`` (same preprocessing, same ONNX
file that is deployed), so two registered versions can be compared on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml_core.calibrate import nll
from ml_core.data import Dataset, load_all_pixels, load_dataset, sample_sources
from ml_core.preprocessing import preprocess_batch

DEFAULT_ECE_BINS = 15


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    probabilities: np.ndarray | None = field(default=None, repr=False)  # N x K calibrated
    labels: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.metrics)

    def __getitem__(self, key: str) -> Any:
        return self.metrics[key]


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> dict[str, list]:
    """Top-label confidence in ``n_bins`` equal-width bins: per non-empty bin its mean
    confidence, accuracy and count. One binning for ECE, the plots and the console."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(axis=1) if len(labels) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64) if len(labels) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    out: dict[str, list] = {"bin": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            out["bin"].append(b)
            out["confidence"].append(float(conf[mask].mean()))
            out["accuracy"].append(float(correct[mask].mean()))
            out["count"].append(int(mask.sum()))
    out["n_bins"] = n_bins  # type: ignore[assignment]
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    rel = reliability_bins(probs, labels, n_bins)
    n = sum(rel["count"])
    if n == 0:
        return 0.0
    gaps = (c * abs(a - f) for c, a, f in zip(rel["count"], rel["accuracy"], rel["confidence"]))
    return float(sum(gaps) / n)


def roc_points(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One-vs-rest ROC curve (rounded points) and its AUC per class that has both outcomes."""
    from sklearn.metrics import roc_auc_score, roc_curve

    out = {}
    for k, cls in enumerate(classes):
        positive = np.asarray(labels) == k
        if positive.any() and (~positive).any():
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            out[cls] = {
                "fpr": fpr.round(4).tolist(),
                "tpr": tpr.round(4).tolist(),
                "auc": float(roc_auc_score(positive, probs[:, k])),
            }
    return out


def single_image_latency_ms(predictor, images: Sequence[np.ndarray]) -> dict[str, float]:
    """p50/p95 of ``predictor.predict`` (heat-map included, as in production), one image at a time."""
    import time

    timings = []
    for pixels in images:
        start = time.perf_counter()
        predictor.predict(pixels)
        timings.append((time.perf_counter() - start) * 1000.0)
    if not timings:
        return {"p50": 0.0, "p95": 0.0, "n": 0}
    return {"p50": float(np.percentile(timings, 50)), "p95": float(np.percentile(timings, 95)), "n": len(timings)}


def compute_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """accuracy, macro/weighted P/R/F1, per-class report, one-vs-rest ROC-AUC, confusion, ECE."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    pred = probs.argmax(axis=1)
    all_k = list(range(k))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=all_k, zero_division=0)
    present = [c for c in all_k if (labels == c).any()]
    try:
        if len(present) == k and k > 2:
            auc = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=all_k))
        elif len(present) == 2 and k == 2:
            auc = float(roc_auc_score(labels, probs[:, 1]))
        else:
            auc = None  # undefined when a class is missing from the data
    except ValueError:
        auc = None
    out: dict[str, Any] = {
        "n": int(len(labels)),
        "classes": list(classes),
        "accuracy": float(accuracy_score(labels, pred)) if len(labels) else 0.0,
        "macro_precision": float(np.mean(p[present])) if present else 0.0,
        "macro_recall": float(np.mean(r[present])) if present else 0.0,
        "macro_f1": float(np.mean(f[present])) if present else 0.0,
        "weighted_f1": float(np.average(f, weights=s)) if s.sum() else 0.0,
        "roc_auc_macro": auc,
        "ece": expected_calibration_error(probs, labels),
        "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())
        if len(labels)
        else 0.0,
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, pred, labels=all_k).tolist(),
        "min_recall": float(np.min(r[present])) if present else 0.0,
    }
    if sources is not None:
        out["per_source"] = per_group_accuracy(labels, pred, sources, classes)
    return out


def per_group_accuracy(labels, pred, groups: Sequence[str], classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Accuracy per source dataset (and its label mix), to expose source shortcuts."""
    labels, pred, groups = np.asarray(labels), np.asarray(pred), np.asarray(list(groups))
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        out[g] = {
            "n": int(m.sum()),
            "accuracy": float((labels[m] == pred[m]).mean()),
            "labels": {classes[c]: int((labels[m] == c).sum()) for c in np.unique(labels[m])},
        }
    return out


def evaluate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    temperature: float = 1.0,
    class_bias: Sequence[float] | None = None,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics on calibrated probabilities (``softmax(logits / T + b)``), plus ECE/NLL before
    calibration (T = 1, no bias)."""
    from ml_core.serve import softmax

    metrics = compute_metrics(labels, softmax(logits, temperature, class_bias), classes, sources=sources)
    metrics["temperature"] = float(temperature)
    metrics["class_bias"] = None if class_bias is None else [float(b) for b in class_bias]
    metrics["ece_uncalibrated"] = expected_calibration_error(softmax(logits, 1.0), labels)
    metrics["nll_uncalibrated"] = nll(logits, labels, 1.0)
    return metrics


def select_split(dataset: Dataset, split: str | None) -> tuple[list, str | None]:
    """The samples to score: ``split`` if given; the 'test' split of a split dataset; else all."""
    if split is None and any(s.split == "test" for s in dataset.samples):
        split = "test"
    samples = dataset.samples if split is None else dataset.split(split)
    if not samples:
        raise ValueError(f"no samples in split {split!r} of {dataset.root}")
    return samples, split


def evaluate_package(
    package_dir: str | Path,
    data: str | Path | Dataset,
    *,
    split: str | None = None,
    intra_op_threads: int = 1,
    batch_size: int = 32,
) -> EvalReport:
    """Score a model package on a dataset (ImageFolder root or manifest CSV) via ONNX Runtime."""
    from ml_core.serve import load_predictor

    predictor = load_predictor(package_dir, intra_op_threads=intra_op_threads)
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    samples, split = select_split(dataset, split)
    unknown = sorted({s.label for s in samples} - set(predictor.classes))
    if unknown:
        raise ValueError(f"data has labels the model does not know: {unknown} (model classes {predictor.classes})")
    index = {c: i for i, c in enumerate(predictor.classes)}
    labels = np.array([index[s.label] for s in samples])
    logits = predictor_logits(predictor, load_all_pixels(samples), batch_size=batch_size)
    metrics = evaluate_logits(
        logits,
        labels,
        predictor.classes,
        temperature=predictor.meta.temperature,
        class_bias=predictor.meta.class_bias,
        sources=sample_sources(dataset.root, samples),
    )
    metrics.update(
        split=split,
        model_name=predictor.meta.name,
        model_version=predictor.meta.version,
        model_format=predictor.meta.format,
        dataset_manifest_sha256=dataset.manifest_sha256 if split is None else _subset_hash(samples),
    )
    return EvalReport(metrics=metrics, probabilities=predictor.probabilities(logits), labels=labels)


def predictor_logits(predictor, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Raw ONNX logits through the serving preprocessing, in batches."""
    out = []
    for i in range(0, len(images), batch_size):
        logits, _ = predictor.run(preprocess_batch(images[i : i + batch_size], predictor.meta.preprocess))
        out.append(logits)
    return np.concatenate(out)


def _subset_hash(samples) -> str:
    from ml_core.data import manifest_hash

    return manifest_hash(samples)


def save_plots(metrics: dict[str, Any], probs: np.ndarray, labels: np.ndarray, out_dir: str | Path) -> list[Path]:
    """Confusion matrix, one-vs-rest ROC curves and a reliability diagram as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = metrics["classes"]
    paths = []

    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = np.asarray(metrics["confusion_matrix"])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    for c, curve in roc_points(probs, labels, classes).items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{c} (AUC {curve['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC (one vs rest)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    rel = reliability_bins(probs, labels)
    centres = [(b + 0.5) / rel["n_bins"] for b in rel["bin"]]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.bar(centres, rel["accuracy"], width=1 / rel["n_bins"], edgecolor="k", alpha=0.7)
    ax.plot([0, 1], [0, 1], "r--", lw=1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {metrics['ece']:.3f})")
    fig.tight_layout()
    paths.append(out_dir / "calibration.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
