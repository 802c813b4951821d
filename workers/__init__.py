"""Celery tasks. Thin: each one calls app services and ml_core; business rules live in services."""

from __future__ import annotations

import os

from celery.signals import worker_process_init
from django.db import OperationalError

# Per-study tasks: acknowledged only when done (a killed worker's task goes back to the queue),
# and retried with back-off through a database or broker outage instead of failing the study.
STUDY_TASK_OPTIONS = {
    "acks_late": True,
    "autoretry_for": (OperationalError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 120,
    "max_retries": 5,
}


@worker_process_init.connect
def _expose_worker_metrics(**kwargs) -> None:
    # Inference metrics are observed where inference runs; a separate worker process
    # serves them on its own port for Prometheus to scrape.
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port))
