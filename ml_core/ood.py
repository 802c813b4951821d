"""Out-of-distribution gate on the model's pooled features (numpy only at serving time).

Method: class-conditional Mahalanobis distance with a shared, shrunk covariance
(Lee et al., 2018) on globally average-pooled last-layer features. The score is the
distance to the nearest class mean; the threshold is a percentile of the scores of
in-distribution images (ideally a held-out validation set), so by construction about
(100 - percentile)% of in-distribution images are flagged.

Stored in a model package as ``ood.npz`` (means, precision) plus a small JSON stub
in package.json: {"method", "file", "threshold", "percentile", "feature_dim", "n_fit"}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OOD_FILE = "ood.npz"
METHOD_MAHALANOBIS = "mahalanobis"


@dataclass
class OODModel:
    means: np.ndarray  # K x D (one row per class, or a single row)
    precision: np.ndarray  # D x D inverse of the shared covariance
    threshold: float  # scores above it are out of distribution
    percentile: float
    n_fit: int
    method: str = METHOD_MAHALANOBIS

    def score(self, pooled: np.ndarray) -> np.ndarray:
        """Distance to the nearest class mean for each row of an N x D array."""
        pooled = np.atleast_2d(np.asarray(pooled, dtype=np.float64))
        diffs = pooled[:, None, :] - self.means[None, :, :]  # N x K x D
        d2 = np.einsum("nkd,de,nke->nk", diffs, self.precision, diffs)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))

    def is_out_of_distribution(self, pooled: np.ndarray) -> np.ndarray:
        return self.score(pooled) > self.threshold


def pooled_features(features: np.ndarray) -> np.ndarray:
    """N x C x h x w feature maps -> N x C (global average pool, as the classifier sees them)."""
    return np.asarray(features, dtype=np.float64).mean(axis=(2, 3))


def fit_mahalanobis(
    pooled: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    percentile: float = 99.0,
    calibration: np.ndarray | None = None,
) -> OODModel:
    """Fit means + shrunk shared covariance on training features; threshold on ``calibration``
    (held-out in-distribution features) when given, else on the training features."""
    from sklearn.covariance import ledoit_wolf  # fitting only; serving never imports sklearn

    x = np.asarray(pooled, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an N x D array with N >= 2, got shape {x.shape}")
    if labels is None:
        labels = np.zeros(len(x), dtype=int)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    # Ledoit-Wolf shrinkage keeps the covariance invertible when N is not >> D.
    cov, _ = ledoit_wolf(centred, assume_centered=True)
    precision = np.linalg.pinv(cov)
    model = OODModel(means=means, precision=precision, threshold=np.inf, percentile=percentile, n_fit=len(x))
    ref = x if calibration is None else np.asarray(calibration, dtype=np.float64)
    model.threshold = float(np.percentile(model.score(ref), percentile))
    return model


def save_ood(model: OODModel, directory: str | Path) -> dict[str, Any]:
    """Write the arrays next to package.json; return the JSON stub that references them."""
    directory = Path(directory)
    np.savez(directory / OOD_FILE, means=model.means.astype(np.float32), precision=model.precision.astype(np.float32))
    return {
        "method": model.method,
        "file": OOD_FILE,
        "threshold": float(model.threshold),
        "percentile": float(model.percentile),
        "feature_dim": int(model.means.shape[1]),
        "n_fit": int(model.n_fit),
    }


def load_ood(directory: str | Path, stub: dict[str, Any] | None) -> OODModel | None:
    """Inverse of save_ood; None when the package has no OOD gate."""
    if not stub:
        return None
    if stub.get("method") != METHOD_MAHALANOBIS:
        raise ValueError(f"unsupported OOD method: {stub.get('method')!r}")
    with np.load(Path(directory) / stub["file"]) as arrays:
        means = arrays["means"].astype(np.float64)
        precision = arrays["precision"].astype(np.float64)
    return OODModel(
        means=means,
        precision=precision,
        threshold=float(stub["threshold"]),
        percentile=float(stub["percentile"]),
        n_fit=int(stub.get("n_fit", 0)),
        method=stub["method"],
    )
