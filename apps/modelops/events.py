"""Live training/augmentation progress over Channels: one group per job.

Publishing never breaks the job: without a channel layer the console falls back to polling.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def job_group(kind: str, job_id) -> str:
    return f"modelops.{kind}.{job_id}"


LOG_TAIL_CHARS = 8000  # the run page streams the log's end; the whole log is rendered on load


def training_payload(run) -> dict:
    from apps.modelops.selectors import run_timing

    return {
        "id": run.pk,
        "timing": run_timing(run),
        "logs_tail": (run.logs or "")[-LOG_TAIL_CHARS:],
        "status": run.status,
        "progress": run.progress,
        "error": run.error,
        "mlflow_run_id": run.mlflow_run_id,
        "result_version": run.result_version_id,
        "finished": run.finished_at is not None,
    }


def augmentation_payload(job) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
        "finished": job.finished_at is not None,
    }


def publish(kind: str, job_id, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(job_group(kind, job_id), {"type": "job.update", "job": payload})
    except Exception:
        logger.warning("could not publish %s %s progress", kind, job_id, exc_info=True)
