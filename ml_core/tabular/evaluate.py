"""Binary metrics, their plots and permutation importance.

``binary_metrics(y, p, threshold)`` is the one definition used for CV folds, the held-out test
split and ``evaluate`` on new data: accuracy, weighted and macro precision/recall/F1,
ROC-AUC, PR-AUC (average precision), Brier score, confusion matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

SCORINGS = ("roc_auc", "f1_macro", "accuracy", "balanced_accuracy", "average_precision")


def binary_metrics(y_true, proba, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of positive-class probabilities ``proba`` against 0/1 labels."""
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    pred = (proba >= threshold).astype(np.int64)
    out: dict[str, Any] = {"n": int(len(y_true)), "positives": int(y_true.sum()), "threshold": threshold}
    out["accuracy"] = float(accuracy_score(y_true, pred))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y_true, pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    both = len(np.unique(y_true)) == 2
    out["roc_auc"] = float(roc_auc_score(y_true, proba)) if both else None
    out["pr_auc"] = float(average_precision_score(y_true, proba)) if both else None
    out["brier"] = float(brier_score_loss(y_true, proba, pos_label=1))
    out["confusion_matrix"] = confusion_matrix(y_true, pred, labels=[0, 1]).tolist()
    return out


def fold_scores(y_true, proba, threshold: float = 0.5) -> dict[str, float]:
    """The CV subset of the metrics, keyed by the ``scoring`` names (``SCORINGS``) plus ``brier``."""
    m = binary_metrics(y_true, proba, threshold)
    return {
        "roc_auc": m["roc_auc"] if m["roc_auc"] is not None else np.nan,
        "f1_macro": m["f1_macro"],
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "average_precision": m["pr_auc"] if m["pr_auc"] is not None else np.nan,
        "brier": m["brier"],
    }


def permutation_table(
    pipeline, X: pd.DataFrame, y, *, scoring: str = "roc_auc", n_repeats: int = 5, seed: int = 0
) -> list[dict[str, Any]]:
    """Drop in ``scoring`` when one input column is shuffled (mean, std over repeats), largest first.

    On the raw input columns, so the figure covers the column's whole path (cleaning, encoding,
    selection, model)."""
    result = permutation_importance(pipeline, X, y, scoring=scoring, n_repeats=n_repeats, random_state=seed, n_jobs=1)
    rows = [
        {"feature": str(c), "importance_mean": float(m), "importance_std": float(s)}
        for c, m, s in zip(X.columns, result.importances_mean, result.importances_std)
    ]
    return sorted(rows, key=lambda r: -r["importance_mean"])


def save_plots(y_true, proba, out_dir: str | Path, *, threshold: float = 0.5, title: str = "") -> list[Path]:
    """confusion_matrix.png, roc.png, pr.png for positive-class probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    m = binary_metrics(y_true, proba, threshold)
    paths = []

    fig, ax = plt.subplots(figsize=(4, 3.6))
    cm = np.asarray(m["confusion_matrix"])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks([0, 1], ["0", "1"])
    ax.set_yticks([0, 1], ["0", "1"])
    ax.set_xlabel(f"predicted (threshold {threshold})")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix {title}".strip())
    paths.append(save_figure(fig, out_dir / "confusion_matrix.png"))

    fig, ax = plt.subplots(figsize=(4, 3.6))
    fpr, tpr, _ = roc_curve(y_true, proba)
    ax.plot(fpr, tpr, label=f"AUC {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC {title}".strip())
    ax.legend(loc="lower right")
    paths.append(save_figure(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(4, 3.6))
    prec, rec, _ = precision_recall_curve(y_true, proba)
    ax.plot(rec, prec, label=f"AP {m['pr_auc']:.3f}")
    ax.axhline(y_true.mean(), color="k", ls=":", lw=0.8, label="prevalence")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall {title}".strip())
    ax.legend(loc="lower left")
    paths.append(save_figure(fig, out_dir / "pr.png"))
    return paths


def save_comparison_plot(y_true, probabilities: dict[str, Any], path: str | Path) -> Path:
    """comparison.png: the ROC curves (left) and precision-recall curves (right) of every
    algorithm on the same held-out test split, AUC / AP in the legends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true)
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(9, 4))
    both = len(np.unique(y_true)) == 2
    for name, proba in probabilities.items():
        proba = np.asarray(proba, dtype=np.float64)
        if not both:
            continue
        fpr, tpr, _ = roc_curve(y_true, proba)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y_true, proba):.3f})")
        prec, rec, _ = precision_recall_curve(y_true, proba)
        pr_ax.plot(rec, prec, label=f"{name} (AP {average_precision_score(y_true, proba):.3f})")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, every algorithm")
    pr_ax.axhline(y_true.mean() if len(y_true) else 0, color="k", ls=":", lw=0.8, label="prevalence")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, every algorithm")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if ax is roc_ax else "lower left", fontsize=7)
    return save_figure(fig, Path(path))


def save_figure(fig, path: Path, *, dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG and free it (the lab's plots and the profile's)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
