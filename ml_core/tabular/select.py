"""Feature selection inside the pipeline: a filter (ANOVA-F, mutual information, chi²) or a
wrapper (RFECV, sequential forward selection), fitted on each training fold like the cleaner.

``build_selector(SelectConfig, seed)`` gives the ``select`` step; ``selection_report(pipeline)``
lists every encoded feature with its score and whether it was kept.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from sklearn.feature_selection import (
    RFECV,
    SelectKBest,
    SelectPercentile,
    SequentialFeatureSelector,
    chi2,
    f_classif,
    mutual_info_classif,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

log = logging.getLogger("ml_core.tabular")


@dataclass
class SelectConfig:
    method: Literal["filter", "wrapper", "none"] = "filter"
    score: Literal["anova_f", "mutual_info", "chi2"] = "anova_f"  # filter score (chi2: scaled to [0, 1] first)
    k: int | None = None  # keep the k best encoded features ...
    fraction: float = 0.8  # ... or this share of them (when k is None)
    wrapper: Literal["rfecv", "sequential"] = "rfecv"  # around an L2 logistic regression, inner 3-fold CV
    wrapper_scoring: str = "roc_auc"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class MutualInfo:
    """Seeded ``mutual_info_classif`` as a named callable (a ``functools.partial`` would have to be
    trusted by the model loader, and a partial can wrap anything)."""

    __name__ = "mutual_info_classif"

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def __call__(self, X, y):
        return mutual_info_classif(X, y, random_state=self.random_state)


def build_selector(cfg: SelectConfig, seed: int = 0):
    """The ``select`` step (``"passthrough"`` for method none)."""
    if cfg.method == "none":
        return "passthrough"
    if cfg.method == "filter":
        score = {
            "anova_f": f_classif,
            "chi2": chi2,
            "mutual_info": MutualInfo(seed),
        }[cfg.score]
        if cfg.k is not None:
            return SelectKBest(score, k=cfg.k)
        if not 0 < cfg.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {cfg.fraction}")
        return SelectPercentile(score, percentile=100 * cfg.fraction)
    base = LogisticRegression(max_iter=2000)
    inner = StratifiedKFold(3, shuffle=True, random_state=seed)
    if cfg.wrapper == "rfecv":
        return RFECV(base, step=1, cv=inner, scoring=cfg.wrapper_scoring, min_features_to_select=1)
    n = cfg.k if cfg.k is not None else cfg.fraction
    return SequentialFeatureSelector(base, n_features_to_select=n, cv=inner, scoring=cfg.wrapper_scoring)


def selection_report(pipeline) -> dict[str, Any]:
    """The fitted pipeline's encoded features: name, score (filter) or rank (RFECV), kept or not."""
    names = [str(n) for n in pipeline.named_steps["encode"].get_feature_names_out()]
    selector = pipeline.named_steps.get("select")
    if selector is None or selector == "passthrough":
        return {
            "method": "none",
            "features": [{"feature": n, "selected": True} for n in names],
            "n_selected": len(names),
        }
    support = selector.get_support()
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"feature": name, "selected": bool(support[i])}
        if hasattr(selector, "scores_"):
            row["score"] = _finite(selector.scores_[i])
            if getattr(selector, "pvalues_", None) is not None:
                row["p_value"] = _finite(selector.pvalues_[i])
        if hasattr(selector, "ranking_"):
            row["rank"] = int(selector.ranking_[i])
        rows.append(row)
    rows.sort(key=lambda r: (not r["selected"], r.get("rank", 0), -(r.get("score") or 0.0)))
    method = type(selector).__name__
    if hasattr(selector, "score_func"):
        func = selector.score_func
        method += f"({getattr(func, '__name__', type(func).__name__)})"
    report = {"method": method, "features": rows, "n_selected": int(support.sum()), "n_encoded": len(names)}
    log.info("selected %d of %d features (%s): %s", report["n_selected"], len(names), method,
             [r["feature"] for r in rows if r["selected"]])  # fmt: skip
    return report


def _finite(value) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None
