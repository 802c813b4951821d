"""Inference: study id in, stored Prediction (or a clear failure) out. Idempotent."""

from __future__ import annotations

from celery import shared_task

from workers import STUDY_TASK_OPTIONS


@shared_task(name="workers.inference.run_inference", **STUDY_TASK_OPTIONS)
def run_inference(study_id: str) -> str:
    from apps.modelops.services.serving import predict_study

    return predict_study(study_id)
