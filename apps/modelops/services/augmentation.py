"""Augmentation jobs: materialise augmented copies of one class (lifecycle: apps.jobs)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.audit.services import record_event
from apps.jobs.services import claim_job, enqueue_job, finish_job, heartbeat_job, keep_alive, run_training_computation
from apps.modelops import selectors
from apps.modelops.models import AugmentationJob, RunStatus
from apps.modelops.services.errors import InvalidJobParameters

logger = logging.getLogger(__name__)


AUGMENTATION_LEVELS = ("none", "light", "medium", "heavy")  # = ml_core.augment.LEVELS (torch-free import kept lazy)


def start_augmentation_job(*, label: str, target_count: int, intensity: str = "medium", actor=None) -> AugmentationJob:
    if intensity not in AUGMENTATION_LEVELS[1:]:
        raise InvalidJobParameters({"intensity": f"one of {', '.join(AUGMENTATION_LEVELS[1:])}"})
    if label not in selectors.dataset_preview()["class_counts"]:
        raise InvalidJobParameters({"label": "not a class of the training data"})
    with transaction.atomic():
        job = AugmentationJob.objects.create(
            label=label,
            target_count=max(1, int(target_count)),
            intensity=intensity,
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(
            actor=actor,
            action="augmentation.start",
            obj=job,
            detail={"label": label, "target_count": job.target_count, "intensity": intensity},
        )
        enqueue_job(job)  # on the `augmentation` queue once committed
    return job


def execute_augmentation_job(job_id: int, *, worker: str = "") -> AugmentationJob | None:
    """The body of the `augmentation` task; None when there is nothing to do (see claim_job).
    A job taken over from a dead worker starts again: materialising overwrites the same files."""
    job = claim_job(AugmentationJob, job_id, worker=worker)
    if job is None:
        return None
    output = settings.DATA_DIR / "augmented" / f"job-{job.pk}" / job.label

    def report(done: int, total: int) -> None:
        heartbeat_job(job, progress={"done": done, "total": total})

    try:
        sources = selectors.class_image_paths(job.label)
        with keep_alive(job):
            _augment_class(sources, output, job.target_count, job.intensity, report)
    except Exception as exc:
        logger.exception("augmentation job %s failed", job.pk)
        return finish_job(job, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    job.output_dir = str(output)
    return finish_job(job, RunStatus.SUCCEEDED, update_fields=["output_dir"])


def _augment_class(sources: list[Path], output: Path, target_count: int, intensity: str, report) -> None:
    """Enough augmented copies of the class's training images to reach `target_count` images."""
    from ml_core import augment

    if not sources:
        raise ValueError("the class has no training images to augment")
    label = sources[0].parent.name
    copies = max(1, -(-(target_count - len(sources)) // len(sources)))
    staging = output.parent / "_source"  # materialise reads an ImageFolder tree of just this class
    (staging / label).mkdir(parents=True, exist_ok=True)
    for path in sources:
        link = staging / label / path.name
        if not link.exists():
            link.symlink_to(path)
    run_training_computation(
        augment.materialise,
        staging,
        output.parent,
        copies=copies,
        cfg=augment.AugmentConfig(level=intensity),
        progress=report,
    )
    shutil.rmtree(staging, ignore_errors=True)
