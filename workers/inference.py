"""Inference: study id in, stored Prediction (or a clear failure) out. Idempotent."""

from __future__ import annotations

import logging

from celery import shared_task

from ml_core.imaging import ImageIntakeError
from workers import STUDY_TASK_OPTIONS

logger = logging.getLogger(__name__)


@shared_task(name="workers.inference.run_inference", **STUDY_TASK_OPTIONS)
def run_inference(study_id: str) -> str:
    from apps.modelops.services import choose_serving_versions, load_predictor, record_shadow_prediction
    from apps.studies import services

    study = services.start_prediction(study_id)
    if study is None:
        return "skipped"
    # Version check at every task: a promotion is picked up without restarting the worker.
    version, shadow = choose_serving_versions(study.pk)
    if version is None:
        services.fail_study(study, code="no_model", reason=services.NO_MODEL_REASON)
        return "failed"
    try:
        pixels = services.load_study_pixels(study)
    except (ImageIntakeError, FileNotFoundError) as exc:
        services.fail_study(study, code="image_unreadable", reason=f"The stored image could not be read: {exc}")
        return "failed"
    result = load_predictor(version).predict(pixels)
    prediction = services.record_prediction(study, model_version=version, result=result)
    if prediction is not None and shadow is not None:
        record_shadow_prediction(study, shadow, pixels)  # stored, never shown to patients
    return "predicted"
