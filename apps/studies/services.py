"""Writes for studies: intake, the status state machine, predictions.

Every status change goes through `transition_study`, which checks the transition,
saves, and publishes the event once the transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.selectors import has_current_consent
from apps.audit.services import record_event
from apps.studies import events
from apps.studies.models import Prediction, PredictionRole, Study, StudyStatus
from ml_core.imaging import ImageIntakeError, decode_image, encode_png

logger = logging.getLogger(__name__)

S = StudyStatus
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.UPLOADED: frozenset({S.QUEUED, S.FAILED}),
    S.QUEUED: frozenset({S.PREDICTING, S.FAILED}),
    # back to queued: a worker died mid-task and the study is handed out again
    S.PREDICTING: frozenset({S.PREDICTED, S.FAILED, S.QUEUED}),
    S.PREDICTED: frozenset({S.EXPLAINING, S.REVIEWED}),
    S.EXPLAINING: frozenset({S.EXPLAINED, S.REVIEWED}),
    S.EXPLAINED: frozenset({S.REVIEWED}),
    S.REVIEWED: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),  # retried by staff
}

NO_MODEL_REASON = "no model is deployed"
NOT_A_CXR_REASON = "This does not look like a chest X-ray, so no finding is reported. Please upload a frontal chest X-ray."


class IllegalTransition(Exception):
    def __init__(self, study_id, from_status: str, to_status: str):
        super().__init__(f"study {study_id}: {from_status} -> {to_status} is not allowed")
        self.from_status = from_status
        self.to_status = to_status


@dataclass
class StudyIntakeError(Exception):
    """An upload refused with a stable code (also the API error code) and a message for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def transition_study(study: Study, to_status: str, *, failure_code: str = "", failure_reason: str = "") -> Study:
    """Move a study to `to_status` if the state machine allows it (row-locked)."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if to_status not in ALLOWED_TRANSITIONS[locked.status]:
            raise IllegalTransition(locked.pk, locked.status, to_status)
        locked.status = to_status
        locked.failure_code = failure_code if to_status == S.FAILED else ""
        locked.failure_reason = failure_reason if to_status == S.FAILED else ""
        locked.save(update_fields=["status", "failure_code", "failure_reason", "updated_at"])
        transaction.on_commit(lambda: events.publish_study_status(locked))
    study.status, study.failure_code, study.failure_reason = locked.status, locked.failure_code, locked.failure_reason
    study.updated_at = locked.updated_at
    return study


def fail_study(study: Study, *, code: str, reason: str) -> Study:
    logger.info("study %s failed: %s (%s)", study.pk, reason, code)
    return transition_study(study, S.FAILED, failure_code=code, failure_reason=reason)


def create_study(
    *,
    owner: User,
    data: bytes,
    patient_age: int | None = None,
    symptoms: str = "",
    ip_address: str | None = None,
) -> Study:
    """Validate an upload, store a de-identified copy, create the study and queue inference.

    Nothing is left behind on failure: the stored file is removed if the database write fails.
    """
    if not has_current_consent(owner):
        raise StudyIntakeError("consent_required", "Please read and accept the current disclaimer before uploading.")
    if not data:
        raise StudyIntakeError("empty_file", "The file is empty.")
    if len(data) > settings.DEEPMED_MAX_UPLOAD_BYTES:
        raise StudyIntakeError(
            "file_too_large", f"The file is larger than the {settings.DEEPMED_MAX_UPLOAD_MB} MB limit."
        )
    try:
        decoded = decode_image(data, max_pixels=settings.DEEPMED_MAX_IMAGE_PIXELS)
    except ImageIntakeError as exc:
        raise StudyIntakeError(exc.code, exc.message) from exc

    study = Study(
        id=uuid.uuid4(),
        owner=owner,
        sha256=hashlib.sha256(data).hexdigest(),
        original_format=decoded.source_format,
        width=decoded.width,
        height=decoded.height,
        technical_tags=decoded.technical,
        patient_age=patient_age,
        symptoms=symptoms.strip()[:1000],
    )
    # Only the pixels are kept (as PNG): DICOM patient tags and EXIF never reach storage.
    study.image.save("image.png", ContentFile(encode_png(decoded.pixels)), save=False)
    try:
        with transaction.atomic():
            study.save(force_insert=True)
            record_event(actor=owner, action="study.create", obj=study, ip_address=ip_address,
                         detail={"format": decoded.source_format, "bytes": len(data)})
            transition_study(study, S.QUEUED)
            transaction.on_commit(lambda: enqueue_inference(study.pk))
    except Exception:
        study.image.delete(save=False)
        raise
    return study


def enqueue_inference(study_id) -> None:
    """Publish the inference task. A broker outage is logged, not raised: the stalled-study
    sweeper re-enqueues queued studies once the broker is back."""
    from workers.inference import run_inference

    try:
        run_inference.apply_async(args=[str(study_id)], retry=False)
    except Exception:  # noqa: BLE001
        logger.warning("could not enqueue inference for study %s; the sweeper will retry", study_id, exc_info=True)


def start_prediction(study_id) -> Study | None:
    """Claim a study for inference. None when there is nothing to do (already predicted,
    deleted, failed) — which is what makes re-delivered tasks harmless."""
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(pk=study_id).first()
        if study is None or study.predictions.filter(role=PredictionRole.CHAMPION).exists():
            return None
        if study.status == S.PREDICTING:  # re-delivered after a worker died mid-task
            return study
        if study.status != S.QUEUED:
            return None
        return transition_study(study, S.PREDICTING)


def load_study_pixels(study: Study) -> np.ndarray:
    with study.image.open("rb") as fh:
        return decode_image(fh.read()).pixels


def record_prediction(study: Study, *, model_version, result) -> Prediction | None:
    """Store the champion's result and move the study on. Out-of-distribution images get
    no label at all: the study fails with a plain explanation instead."""
    from apps.studies import metrics

    if result.is_out_of_distribution:
        fail_study(study, code="not_a_chest_xray", reason=NOT_A_CXR_REASON)
        return None
    prediction = Prediction(
        study=study,
        role=PredictionRole.CHAMPION,
        model_version=model_version,
        model_name=result.model_name,
        model_version_label=result.model_version,
        label=result.label,
        probabilities=result.probabilities,
        confidence=result.confidence,
        latency_ms=result.latency_ms,
        heatmap_regions=result.heatmap_regions or {},
        ood_score=result.ood_score,
    )
    if result.heatmap_png:
        prediction.heatmap.save("heatmap.png", ContentFile(result.heatmap_png), save=False)
    try:
        with transaction.atomic():
            prediction.save()
            transition_study(study, S.PREDICTED)
    except IntegrityError:
        # Another delivery of the same task won the race; keep its result.
        if prediction.heatmap:
            prediction.heatmap.delete(save=False)
        return None
    metrics.observe_prediction(result.label, result.latency_ms, model_version=result.model_version)
    return prediction


def requeue_stalled_studies(*, older_than_seconds: int = 300) -> int:
    """Re-enqueue studies stuck in `queued` (task lost before reaching the broker)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stalled = list(Study.objects.filter(status=S.QUEUED, updated_at__lt=cutoff).values_list("pk", flat=True))
    for study_id in stalled:
        Study.objects.filter(pk=study_id).update(updated_at=timezone.now())
        enqueue_inference(study_id)
    return len(stalled)
