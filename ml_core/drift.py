"""Data drift between a training reference and a recent window of predictions (numpy only).

Three signals, each normalised so that 1.0 means "significant":
- label mix: population stability index (PSI) of the predicted labels, / `psi_limit`
  (0.25 is the conventional "major shift" level);
- confidence: two-sample Kolmogorov-Smirnov statistic of the top-class probability,
  / its critical value at `alpha` for the two sample sizes;
- embedding: the same KS test on the embedding's distance to the training class means
  (the OOD gate's Mahalanobis score, one number per image summarising where its pooled
  features sit), when the model has an OOD gate.

The drift score is the largest normalised signal; above the threshold (default 1.0)
the window has drifted. A window smaller than `min_samples` gets no verdict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PSI_LIMIT = 0.25
KS_ALPHA = 0.01
PSI_EPSILON = 1e-4  # stands in for an empty bin so PSI stays finite


@dataclass
class DriftConfig:
    threshold: float = 1.0
    min_samples: int = 30
    psi_limit: float = PSI_LIMIT
    alpha: float = KS_ALPHA
    max_reference_points: int = 1000


@dataclass
class DriftReference:
    """What the model saw at training/validation time (or in its first production window)."""

    classes: list[str]
    label_mix: dict[str, float]
    confidence: list[float]
    embedding_score: list[float] = field(default_factory=list)
    n: int = 0
    source: str = "training"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class DriftReport:
    n: int
    label_psi: float
    confidence_ks: float
    embedding_ks: float | None
    score: float  # max of the normalised signals; NaN when the window is too small
    drifted: bool
    components: dict[str, float]  # normalised signal per name

    @property
    def enough_data(self) -> bool:
        return not math.isnan(self.score)


def label_mix(labels: Iterable[str], classes: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = sum(counts[c] for c in classes)
    return {c: (counts[c] / total if total else 0.0) for c in classes}


def _subsample(values: Sequence[float], limit: int) -> list[float]:
    """Evenly spaced order statistics: keeps the distribution's shape in `limit` points."""
    arr = np.sort(np.asarray(values, dtype=np.float64))
    if len(arr) > limit:
        arr = arr[np.linspace(0, len(arr) - 1, limit).round().astype(int)]
    return arr.tolist()


def build_reference(
    labels: Sequence[str],
    confidences: Sequence[float],
    classes: Sequence[str],
    embedding_scores: Sequence[float] | None = None,
    *,
    source: str = "training",
    max_points: int = 1000,
) -> DriftReference:
    """Summarise reference predictions (e.g. the validation split) for later comparison."""
    return DriftReference(
        classes=list(classes),
        label_mix=label_mix(labels, classes),
        confidence=_subsample(confidences, max_points),
        embedding_score=_subsample(embedding_scores or [], max_points),
        n=len(labels),
        source=source,
    )


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """PSI = sum (a - e) * ln(a / e) over the categories of either distribution."""
    psi = 0.0
    for key in set(expected) | set(actual):
        e = max(float(expected.get(key, 0.0)), PSI_EPSILON)
        a = max(float(actual.get(key, 0.0)), PSI_EPSILON)
        psi += (a - e) * math.log(a / e)
    return psi


def ks_statistic(sample: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    a = np.sort(np.asarray(sample, dtype=np.float64))
    b = np.sort(np.asarray(reference, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        return 0.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_critical_value(n: int, m: int, alpha: float = KS_ALPHA) -> float:
    """Asymptotic critical value of the two-sample KS statistic at level `alpha`."""
    c = math.sqrt(-0.5 * math.log(alpha / 2))
    return c * math.sqrt((n + m) / (n * m))


def compute_drift(
    reference: DriftReference,
    labels: Sequence[str],
    confidences: Sequence[float],
    embedding_scores: Sequence[float] | None = None,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare a window of predictions with the reference (see the module docstring)."""
    config = config or DriftConfig()
    n = len(labels)
    psi = population_stability_index(reference.label_mix, label_mix(labels, reference.classes))
    conf_ks = ks_statistic(confidences, reference.confidence)
    components = {"label_psi": psi / config.psi_limit}
    if reference.confidence and n:
        components["confidence_ks"] = conf_ks / ks_critical_value(n, len(reference.confidence), config.alpha)
    emb = [s for s in (embedding_scores or []) if s is not None and not math.isnan(s)]
    emb_ks = None
    if emb and reference.embedding_score:
        emb_ks = ks_statistic(emb, reference.embedding_score)
        components["embedding_ks"] = emb_ks / ks_critical_value(len(emb), len(reference.embedding_score), config.alpha)
    if n < config.min_samples:
        return DriftReport(n, psi, conf_ks, emb_ks, float("nan"), False, components)
    score = max(components.values())
    return DriftReport(n, psi, conf_ks, emb_ks, score, score > config.threshold, components)
