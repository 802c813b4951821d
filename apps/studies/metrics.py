"""Prometheus instruments for inference, observed in the process that runs it.

The web process serves them at /metrics; a separate worker process exposes its own
on WORKER_METRICS_PORT (see workers/__init__.py).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram

INFERENCE_LATENCY = Histogram(
    "deepmed_inference_latency_seconds",
    "Model inference latency per study (preprocess + model + heat-map).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter(
    "deepmed_predictions_total", "Predictions made, by label and model version.", ["label", "model_version"]
)


UPLOAD_TO_PREDICTION = Histogram(
    "deepmed_upload_to_prediction_seconds",
    "Upload to preliminary result per study: study created to its champion prediction stored "
    "(queueing, the worker and the model; server-side, from the stored timestamps).",
    buckets=(0.025, 0.05, 0.1, 0.15, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)


def observe_prediction(label: str, latency_ms: float, *, model_version: str) -> None:
    INFERENCE_LATENCY.observe(latency_ms / 1000.0)
    PREDICTIONS.labels(label=label, model_version=model_version).inc()


def observe_upload_to_prediction(created_at: datetime | None, finished_at: datetime | None) -> None:
    if created_at is None or finished_at is None:
        return
    UPLOAD_TO_PREDICTION.observe(max(0.0, (finished_at - created_at).total_seconds()))
