"""Post-hoc calibration fitted on validation logits.

- Temperature scaling (Guo et al., 2017): one scalar T; every argmax is kept.
- Bias-corrected temperature scaling, BCTS (Alexandari et al., ICML 2020): T plus one additive
  bias per class, fitted jointly by validation NLL. The biases absorb a systematic lean of the
  network towards some classes (here: adult normals read as pneumonia/COVID-19), so decisions can
  change; it needs enough validation images per class to be trusted (``BCTS_MIN_PER_CLASS``).

Served probabilities are ``softmax(logits / T + b)`` (``ml_core.serve.softmax``). numpy at import;
scipy only inside the fitting functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

T_MIN, T_MAX = 0.05, 20.0
BIAS_LIMIT = 4.0  # |b_k| bound: a larger shift would say more about the data than the model
BCTS_MIN_PER_CLASS = 20  # fewer validation images of a class: temperature only

Method = Literal["temperature", "bias_corrected"]


def log_softmax(logits: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the true labels at ``temperature`` (and ``bias``)."""
    lp = log_softmax(logits, temperature, bias)
    return float(-lp[np.arange(len(labels)), np.asarray(labels)].mean())


def _checked(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need N x K logits and N labels, got {logits.shape} and {labels.shape}")
    return logits, labels


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] minimising validation NLL (1-D bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    logits, labels = _checked(logits, labels)
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(res.x))


def fit_bias_corrected_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(T, b) minimising validation NLL of ``softmax(logits / T + b)``; ``b`` has zero mean
    (softmax ignores a common shift). Starts from plain temperature scaling."""
    from scipy.optimize import minimize

    logits, labels = _checked(logits, labels)
    k = logits.shape[1]
    t0 = fit_temperature(logits, labels)

    def objective(params: np.ndarray) -> float:
        return nll(logits, labels, float(np.exp(params[0])), np.concatenate([[0.0], params[1:]]))

    bounds = [(np.log(T_MIN), np.log(T_MAX))] + [(-BIAS_LIMIT, BIAS_LIMIT)] * (k - 1)
    res = minimize(objective, np.concatenate([[np.log(t0)], np.zeros(k - 1)]), method="L-BFGS-B", bounds=bounds)
    bias = np.concatenate([[0.0], res.x[1:]])
    return float(np.exp(res.x[0])), bias - bias.mean()


@dataclass(frozen=True)
class Calibration:
    method: Method
    temperature: float
    class_bias: list[float] | None = None  # None for temperature scaling
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "temperature": self.temperature,
            "class_bias": self.class_bias,
            "notes": self.notes,
        }


def fit_calibration(logits: np.ndarray, labels: np.ndarray, method: Method = "bias_corrected") -> Calibration:
    """Fit ``method`` on validation logits; bias correction falls back to temperature scaling
    (saying why) when a class has fewer than ``BCTS_MIN_PER_CLASS`` validation images."""
    logits, labels = _checked(logits, labels)
    if method not in ("temperature", "bias_corrected"):
        raise ValueError(f"unknown calibration method {method!r}")
    if method == "bias_corrected":
        counts = np.bincount(labels, minlength=logits.shape[1])
        if counts.min() >= BCTS_MIN_PER_CLASS:
            temperature, bias = fit_bias_corrected_temperature(logits, labels)
            return Calibration("bias_corrected", temperature, [float(b) for b in bias])
        note = f"bias correction skipped: {int(counts.min())} validation images in the smallest class (< {BCTS_MIN_PER_CLASS})"
        return Calibration("temperature", fit_temperature(logits, labels), None, [note])
    return Calibration("temperature", fit_temperature(logits, labels))
