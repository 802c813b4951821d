"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits.

Dividing logits by T keeps every argmax (accuracy unchanged) and fixes over/under-
confidence. numpy + scipy only.
"""

from __future__ import annotations

import numpy as np

T_MIN, T_MAX = 0.05, 20.0


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels at ``temperature``."""
    lp = log_softmax(logits, temperature)
    return float(-lp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] minimising validation NLL (1-D bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need N x K logits and N labels, got {logits.shape} and {labels.shape}")
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(res.x))
