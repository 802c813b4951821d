"""Writes for studies: intake, the status state machine, predictions (champion and shadow).

This app owns Study and Prediction: other apps write them only through these functions.
Every status change goes through `transition_study` (row-locked), or on the per-study path
(intake and inference) its compare-and-set form `_advance_study` (one conditional UPDATE); both
check the transition, save, and publish the event once the transaction commits. What other apps
derive from a study (samples, explanations) follows it through apps.studies.signals.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import uuid
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.selectors import has_current_consent, has_research_consent
from apps.audit.services import record_event
from apps.core import tasks
from apps.core.errors import ApplicationError
from apps.studies import events, signals
from apps.studies.models import IdentifyingText, Prediction, PredictionRole, Study, StudyStatus
from ml_core.imaging import DecodeSlots, ImageIntakeError, decode_image, encode_png, thumbnail_png

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
NOT_A_CXR_REASON = (
    "This does not look like a chest X-ray, so no finding is reported. Please upload a frontal chest X-ray."
)


class IllegalTransition(Exception):
    def __init__(self, study_id, from_status: str, to_status: str):
        super().__init__(f"study {study_id}: {from_status} -> {to_status} is not allowed")
        self.from_status = from_status
        self.to_status = to_status


class StudyIntakeError(ApplicationError):
    """An upload refused with a stable code (also the API error code) and a message for people.
    `reason` keeps the finer ml_core code when several are reported under one stable code
    (`details.reason`)."""

    code = "intake_refused"
    # Refusals about the file are 400s; these are about the user, the size or the server's load.
    status_by_code = {"consent_required": 403, "file_too_large": 413, "server_busy": 503}

    def __init__(self, code: str, message: str, reason: str = ""):
        details = {"reason": reason} if reason and reason != code else None
        super().__init__(message, code=code, details=details)
        self.reason = reason


# ml_core's finer intake codes -> the stable codes of the API contract.
INTAKE_CODES = {
    "decompression_bomb": "image_too_large",
    "dicom_no_pixel_data": "corrupt_image",
    "dicom_secondary_capture": "dicom_burned_in_phi",  # both: the pixels may show a name or an id
}
# Failures that would come out the same again: a re-upload of the same bytes links to them.
DETERMINISTIC_FAILURES = frozenset({"not_a_chest_xray"})


# Entering these statuses stamps the study: the inference task was published / taken by a worker.
STEP_TIMESTAMPS = {S.QUEUED: "queued_at", S.PREDICTING: "inference_started_at"}


def transition_study(
    study: Study, to_status: str, *, failure_code: str = "", failure_reason: str = "", savepoint: bool = True
) -> Study:
    """Move a study to `to_status` if the state machine allows it (row-locked). `savepoint=False`
    inside a transaction that any error here rolls back anyway saves two round trips."""
    with transaction.atomic(savepoint=savepoint):
        locked = Study.objects.select_for_update().get(pk=study.pk)
        _transition_locked(locked, to_status, failure_code=failure_code, failure_reason=failure_reason)
    study.status, study.failure_code, study.failure_reason = locked.status, locked.failure_code, locked.failure_reason
    study.updated_at, study.queued_at = locked.updated_at, locked.queued_at
    study.inference_started_at = locked.inference_started_at
    return study


def _transition_locked(locked: Study, to_status: str, *, failure_code: str = "", failure_reason: str = "") -> None:
    """transition_study's update of a row the caller's transaction has just selected for update."""
    if to_status not in ALLOWED_TRANSITIONS[locked.status]:
        raise IllegalTransition(locked.pk, locked.status, to_status)
    locked.status = to_status
    locked.failure_code = failure_code if to_status == S.FAILED else ""
    locked.failure_reason = failure_reason if to_status == S.FAILED else ""
    fields = ["status", "failure_code", "failure_reason", "updated_at"]
    # The inference step's timestamps (copied onto the Prediction when it is stored).
    step_stamp = STEP_TIMESTAMPS.get(to_status)
    if step_stamp:
        setattr(locked, step_stamp, timezone.now())
        fields.append(step_stamp)
    locked.save(update_fields=fields)
    _publish_on_commit(locked)


def _publish_on_commit(study: Study) -> None:
    published = copy.copy(study)  # as committed, whatever the caller does with `study` before the commit
    transaction.on_commit(lambda: events.publish_study_status(published))


def _advance_study(study: Study, to_status: str, *, expected: str) -> bool:
    """Move `study` from `expected` to `to_status` in one conditional UPDATE (a compare-and-set:
    the WHERE clause is the check that transition_study makes under a row lock, without the
    SELECT ... FOR UPDATE, savepoint or transaction around it). On success `study` holds the new
    values and the event is published once committed, as transition_study does; False when the
    row was not `expected` (deleted, or moved on by another delivery): the caller decides.
    For the inference path, which moves every study twice (profiled: 5 statements -> 1 each)."""
    if to_status not in ALLOWED_TRANSITIONS[expected]:
        raise IllegalTransition(study.pk, expected, to_status)
    now = timezone.now()
    values = {"status": to_status, "failure_code": "", "failure_reason": "", "updated_at": now}
    step_stamp = STEP_TIMESTAMPS.get(to_status)
    if step_stamp:
        values[step_stamp] = now
    if not Study.objects.filter(pk=study.pk, status=expected).update(**values):
        return False
    for name, value in values.items():
        setattr(study, name, value)
    _publish_on_commit(study)
    return True


def fail_study(study: Study, *, code: str, reason: str) -> Study:
    logger.info("study %s failed: %s (%s)", study.pk, reason, code)
    return transition_study(study, S.FAILED, failure_code=code, failure_reason=reason)


def ensure_can_upload(owner: User) -> None:
    """Raise `consent_required` unless `owner` accepted the current disclaimer."""
    if not has_current_consent(owner):
        raise StudyIntakeError("consent_required", "Please read and accept the current disclaimer before uploading.")


def create_study_from_upload(*, owner: User, upload, **kwargs) -> Study:
    """`create_study` for an uploaded file object: the size is checked before reading it
    into memory (web form and API both come here)."""
    ensure_can_upload(owner)
    if upload.size is not None and upload.size > settings.DEEPMED_MAX_UPLOAD_BYTES:
        raise _file_too_large()
    return create_study(owner=owner, data=upload.read(), **kwargs)


def _file_too_large() -> StudyIntakeError:
    return StudyIntakeError("file_too_large", f"The file is larger than the {settings.DEEPMED_MAX_UPLOAD_MB} MB limit.")


def create_study(
    *,
    owner: User,
    data: bytes,
    patient_age: int | None = None,
    symptoms: str = "",
    ip_address: str | None = None,
) -> Study:
    """Validate an upload, store a de-identified copy, create the study and queue inference.

    The same bytes uploaded again by the same patient return the existing study (its
    `is_duplicate_upload` attribute is True) instead of running the model again.
    Nothing is left behind on failure: the stored file is removed if the database write fails.
    """
    ensure_can_upload(owner)
    if not data:
        raise StudyIntakeError("empty_file", "The file is empty.")
    if len(data) > settings.DEEPMED_MAX_UPLOAD_BYTES:
        raise _file_too_large()
    sha256 = hashlib.sha256(data).hexdigest()
    existing = find_duplicate_study(owner, sha256)
    if existing is not None:
        record_event(actor=owner, action="study.duplicate_upload", obj=existing, ip_address=ip_address)
        existing.is_duplicate_upload = True
        return existing
    try:
        decoded = decode_image(
            data,
            max_pixels=settings.DEEPMED_MAX_IMAGE_PIXELS,
            max_side=settings.DEEPMED_MAX_IMAGE_SIDE,
            slots=intake_decode_slots(),
            burned_in=settings.DEEPMED_DICOM_BURNED_IN,
            secondary_capture=settings.DEEPMED_DICOM_SECONDARY_CAPTURE,
        )
    except ImageIntakeError as exc:
        raise StudyIntakeError(INTAKE_CODES.get(exc.code, exc.code), exc.message, reason=exc.code) from exc

    study = Study(
        id=uuid.uuid4(),
        owner=owner,
        sha256=sha256,
        original_format=decoded.source_format,
        width=decoded.width,
        height=decoded.height,
        technical_tags=decoded.technical,
        patient_age=patient_age,
        symptoms=symptoms.strip()[:1000],
        # The first signal names the reason; a flagged image is kept but never trains.
        identifying_text=decoded.pixel_phi[0] if decoded.pixel_phi else IdentifyingText.NONE,
    )
    # Only the pixels are kept (as PNG): DICOM patient tags and EXIF never reach storage.
    study.image.save("image.png", ContentFile(encode_png(decoded.pixels)), save=False)
    study.thumbnail.save("thumbnail.png", ContentFile(thumbnail_png(decoded.pixels)), save=False)
    try:
        with transaction.atomic():
            study.save(force_insert=True)
            record_event(
                actor=owner,
                action="study.create",
                obj=study,
                ip_address=ip_address,
                detail={
                    "format": decoded.source_format,
                    "bytes": len(data),
                    **({"identifying_text": study.identifying_text} if study.identifying_text else {}),
                },
            )
            # Inserted above by this transaction, so no one else sees the row yet: one UPDATE
            # instead of transition_study's savepoint, row lock and update (4 statements).
            if not _advance_study(study, S.QUEUED, expected=S.UPLOADED):
                raise IllegalTransition(study.pk, study.status, S.QUEUED)
            transaction.on_commit(lambda: enqueue_inference(study.pk))
    except Exception:
        study.image.delete(save=False)
        study.thumbnail.delete(save=False)
        raise
    study.is_duplicate_upload = False
    return study


def intake_decode_slots() -> DecodeSlots:
    """This process's limit on concurrent upload decodes (DEEPMED_MAX_CONCURRENT_DECODES, waiting
    DEEPMED_DECODE_WAIT_SECONDS for a slot before `server_busy`)."""
    return _decode_slots(settings.DEEPMED_MAX_CONCURRENT_DECODES, settings.DEEPMED_DECODE_WAIT_SECONDS)


@cache
def _decode_slots(size: int, wait_s: float) -> DecodeSlots:
    return DecodeSlots(size, wait_s=wait_s)  # one per settings value, shared by every request thread


def find_duplicate_study(owner: User, sha256: str) -> Study | None:
    """The owner's earlier study of the same bytes, unless it failed for a passing reason."""
    candidates = Study.objects.filter(owner=owner, sha256=sha256).order_by("-created_at")
    for study in candidates:
        if study.status != S.FAILED or study.failure_code in DETERMINISTIC_FAILURES:
            return study
    return None


def set_identifying_text(study_id, *, flagged: bool, actor: User, ip_address: str | None = None) -> tuple[Study, int]:
    """A physician or administrator says identifying text is (or is not) visible in a study's
    image. Flagging withdraws its training samples (`excluded=True`) and keeps later reviews out
    of training; clearing lets later reviews train again (samples already withdrawn stay so).
    Audited; returns the study and how many samples were withdrawn now (by the receivers of
    signals.identifying_text_flagged: apps.review)."""
    if not getattr(actor, "is_clinical_staff", False):
        raise PermissionDenied("Only physicians and administrators flag identifying text.")
    with transaction.atomic():
        # The row lock orders this with save_review, which reads the flag under the same lock.
        study = Study.objects.select_for_update().filter(pk=study_id).first()
        if study is None:
            raise Http404("No such study.")
        previous = study.identifying_text
        if flagged and not previous:
            study.identifying_text = IdentifyingText.PHYSICIAN
        elif not flagged:
            study.identifying_text = IdentifyingText.NONE
        study.save(update_fields=["identifying_text", "updated_at"])
        excluded = sum(signals.responses(signals.identifying_text_flagged, study=study)) if flagged else 0
        record_event(
            actor=actor,
            action="study.identifying_text",
            obj=study,
            ip_address=ip_address,
            detail={
                "flagged": flagged,
                "identifying_text": study.identifying_text,
                "previous": previous,
                "samples_excluded": excluded,
            },
        )
    return study, excluded


def delete_study(study: Study, *, actor: User, ip_address: str | None = None, reason: str = "patient_request") -> None:
    """Delete a study, its image, heat-maps and every derived file in storage (audited).

    What other apps derived from it follows through signals.study_deleting (each app writes its
    own rows): its labelled samples leave the retraining queue (`excluded=True`, image removed)
    unless a physician already labelled it AND the owner currently consents to research use;
    then the sample (and the one file it points to) is kept, detached from the deleted study.
    """
    keep_for_research = has_research_consent(study.owner)
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        derived = signals.responses(signals.study_deleting, study=locked, keep_for_research=keep_for_research)
        retained = set().union(*(d.keep_files for d in derived))
        files = {locked.image.name, locked.thumbnail.name} | {
            p.heatmap.name for p in locked.predictions.all() if p.heatmap
        }
        files |= set().union(*(d.remove_files for d in derived))
        files = {name for name in files if name} - retained
        record_event(
            actor=actor,
            action="study.delete",
            obj=locked,
            ip_address=ip_address,
            detail={"reason": reason, **{k: v for d in derived for k, v in d.audit.items()}},
        )
        study_id = locked.pk
        locked.delete()
        transaction.on_commit(lambda: remove_study_files(study_id, files, retained=retained))


def remove_study_files(study_id, names: set[str], *, retained: set[str] = frozenset()) -> list[str]:
    """Remove the named files and anything else stored under the study's folder (derived
    files other parts of the system may have written), except `retained` ones."""
    from django.core.files.storage import default_storage

    names = set(names) | set(_stored_files_under(default_storage, f"studies/{study_id}"))
    removed = []
    for name in sorted(names - set(retained)):
        try:
            default_storage.delete(name)
            removed.append(name)
        except Exception:
            logger.warning("could not delete stored file %s of study %s", name, study_id, exc_info=True)
    remove_empty_study_folder(default_storage, study_id)
    return removed


def remove_empty_study_folder(storage, study_id) -> bool:
    """Local storage: remove the study's folder `studies/<id>` (and its sub-folders) once empty,
    so no folder named by a deleted study's id is left behind; a folder still holding a file
    (a training sample kept for research) stays. Storages without folders (Azure Blob: a prefix
    is gone with its last blob; no local path) have nothing to remove. True if it was removed."""

    try:
        root = Path(storage.path(f"studies/{study_id}"))
    except (NotImplementedError, AttributeError):
        return False
    if not root.is_dir():
        return False
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [root]:
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only ever removes an empty folder
    return not root.exists()


def _stored_files_under(storage, prefix: str) -> list[str]:
    try:
        dirs, files = storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return []
    # FileSystemStorage lists names relative to the folder; django-storages' Azure backend
    # lists the blobs' full names (it has no folders).
    found = [name if name.startswith(f"{prefix}/") else f"{prefix}/{name}" for name in files]
    for sub in dirs:
        found += _stored_files_under(storage, f"{prefix}/{sub}")
    return found


def enqueue_inference(study_id) -> None:
    """Publish the inference task. A broker outage is logged, not raised: the stalled-study
    sweeper re-enqueues queued studies once the broker is back."""
    try:
        tasks.enqueue(tasks.INFERENCE, str(study_id))
    except Exception:
        logger.warning("could not enqueue inference for study %s; the sweeper will retry", study_id, exc_info=True)


def claim_study_step(study_id, *, ready: str, working: str, done: Exists) -> Study | None:
    """A worker claims a study for one step, moving it from `ready` to `working`. `done` is an
    Exists over the step's result (OuterRef("pk") is the study). None when there is nothing to do
    (deleted, the step's result already stored, another status) — which is what makes
    re-delivered tasks harmless.

    One SELECT (the study and `done` together) and one compare-and-set UPDATE, in autocommit:
    the row lock and transaction around them cost three more round trips per study. Another
    delivery claiming the study between the two makes the UPDATE match nothing; then the claim
    is decided again under the row lock."""
    study = Study.objects.annotate(step_done=done).filter(pk=study_id).first()
    if study is None or study.step_done:
        return None
    if study.status == working:  # re-delivered after a worker died mid-task
        return study
    if study.status != ready:
        return None
    if _advance_study(study, working, expected=ready):
        return study
    with transaction.atomic():
        study = Study.objects.select_for_update().annotate(step_done=done).filter(pk=study_id).first()
        if study is None or study.step_done:
            return None
        if study.status == working:
            return study
        if study.status != ready:
            return None
        _transition_locked(study, working)  # already locked above: no second select, no savepoint
        return study


def start_prediction(study_id) -> Study | None:
    """Claim a study for inference (see claim_study_step)."""
    return claim_study_step(
        study_id,
        ready=S.QUEUED,
        working=S.PREDICTING,
        done=Exists(Prediction.objects.filter(study=OuterRef("pk"), role=PredictionRole.CHAMPION)),
    )


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
        queued_at=study.queued_at,
        started_at=study.inference_started_at,
    )
    if result.heatmap_png:
        prediction.heatmap.save("heatmap.png", ContentFile(result.heatmap_png), save=False)
    try:
        with transaction.atomic():
            # The status first, as a compare-and-set: it takes the row lock a second delivery's
            # transaction then waits on, and it fails for a study deleted or already moved on.
            if not _advance_study(study, S.PREDICTED, expected=S.PREDICTING):
                raise _prediction_superseded(study)
            prediction.finished_at = study.updated_at
            prediction.save(force_insert=True)
            # apps.explanations queues the explanation, sent once the prediction is committed.
            signals.study_predicted.send(sender=Study, study=study)
    except (IntegrityError, Study.DoesNotExist):
        # Another delivery of the same task won the race (keep its result), or the patient
        # deleted the study meanwhile: leave no heat-map behind.
        if prediction.heatmap:
            prediction.heatmap.delete(save=False)
        return None
    metrics.observe_prediction(result.label, result.latency_ms, model_version=result.model_version)
    metrics.observe_upload_to_prediction(study.created_at, prediction.finished_at)
    return prediction


def _prediction_superseded(study: Study) -> Exception:
    """Why a study could not move from predicting to predicted: deleted (Study.DoesNotExist),
    another delivery stored its result (IntegrityError, as the INSERT would have raised), or a
    status from which that is not allowed (IllegalTransition)."""
    current = (
        Study.objects.filter(pk=study.pk)
        .annotate(predicted=Exists(Prediction.objects.filter(study=OuterRef("pk"), role=PredictionRole.CHAMPION)))
        .values_list("status", "predicted")
        .first()
    )
    if current is None:
        return Study.DoesNotExist(f"study {study.pk} was deleted")
    status, predicted = current
    if predicted:
        return IntegrityError(f"study {study.pk} already has a champion prediction")
    return IllegalTransition(study.pk, status, S.PREDICTED)


def record_shadow_prediction(study: Study, *, model_version, result) -> Prediction:
    """Store a shadow (challenger) result: role=challenger, never shown to patients, no heat-map.
    A second delivery keeps the first one."""
    prediction, _ = Prediction.objects.get_or_create(
        study=study,
        role=PredictionRole.CHALLENGER,
        defaults={
            "model_version": model_version,
            "model_name": result.model_name,
            "model_version_label": result.model_version,
            "label": result.label,
            "probabilities": result.probabilities,
            "confidence": result.confidence,
            "latency_ms": result.latency_ms,
            "ood_score": result.ood_score,
            "queued_at": study.queued_at,
            "started_at": study.inference_started_at,
            "finished_at": timezone.now(),
        },
    )
    return prediction


def touch_study(study_id) -> None:
    """Stamp a study as just handled (`updated_at`) without changing it: a sweeper that re-sent
    its task leaves it alone until the next period."""
    Study.objects.filter(pk=study_id).update(updated_at=timezone.now())


def delete_studies_of(user: User, *, ip_address: str | None = None) -> int:
    """Every study of `user` through `delete_study` (account deletion); how many."""
    studies = list(Study.objects.filter(owner=user))
    for study in studies:
        delete_study(study, actor=user, ip_address=ip_address, reason="account_deleted")
    return len(studies)


def requeue_stalled_studies(*, older_than_seconds: int = 300) -> int:
    """Re-enqueue studies stuck in `queued` (task lost before reaching the broker)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stalled = list(Study.objects.filter(status=S.QUEUED, updated_at__lt=cutoff).values_list("pk", flat=True))
    for study_id in stalled:
        touch_study(study_id)
        enqueue_inference(study_id)
    return len(stalled)
