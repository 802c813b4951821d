"""Receivers of apps.jobs' `job_changed` for this app's jobs (connected in apps.py): every state
change is pushed live to the console; a sweeper's verdict joins the training run's log."""

from __future__ import annotations

from django.utils import timezone

from apps.modelops import events
from apps.modelops.models import AugmentationJob, TrainingRun


def training_run_changed(sender, job: TrainingRun, change: str, **kwargs) -> None:
    line = ""
    if change in ("stalled", "lost"):
        line = f"failed by the sweeper: {job.error}"
    elif change == "claimed" and job.attempts > 1:
        line = f"taken over by {job.worker or 'another worker'}: the previous worker stopped responding"
    if line:
        job.logs = (job.logs + f"{timezone.now():%H:%M:%S} {line}\n")[-200_000:]
        TrainingRun.objects.filter(pk=job.pk).update(logs=job.logs)
    events.publish("training", job.pk, events.training_payload(job))


def augmentation_job_changed(sender, job: AugmentationJob, change: str, **kwargs) -> None:
    events.publish("augmentation", job.pk, events.augmentation_payload(job))
