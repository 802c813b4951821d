"""One background-job lifecycle: queued → running → succeeded | failed | cancelled.

Training runs, augmentation jobs and explainer fine-tunes inherit `Job` and name the Celery task
that runs them; claiming, heartbeats, finishing and the sweeper's rules live in
apps.jobs.services, once for all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.db import models
from django.db.models.functions import Coalesce


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def stalled(self, older_than: datetime) -> JobQuerySet:
        """Running, with no sign of life (heartbeat, else claim) since `older_than`: the worker is gone."""
        return (
            self.filter(status=JobStatus.RUNNING)
            .alias(seen=Coalesce("heartbeat_at", "started_at", "created_at"))
            .filter(seen__lt=older_than)
        )

    def alive(self, since: datetime) -> JobQuerySet:
        """Running, with a heartbeat since `since`: a worker is busy with it."""
        return self.filter(status=JobStatus.RUNNING, heartbeat_at__gte=since)

    def lost(self, older_than: datetime) -> JobQuerySet:
        """Queued, its task message sent (or the job created) before `older_than` and not yet claimed."""
        return (
            self.filter(status=JobStatus.QUEUED)
            .alias(sent=Coalesce("enqueued_at", "created_at"))
            .filter(sent__lt=older_than)
        )


class Job(models.Model):
    """A unit of background work on a Celery queue. A concrete job sets `task_name` (the task,
    called with the job's pk) and `audit_prefix` (its audit actions: `<prefix>.stalled`, ...)."""

    task_name: ClassVar[str] = ""
    audit_prefix: ClassVar[str] = ""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="id of the last task message sent")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="when the last task message was sent")
    requeues = models.PositiveSmallIntegerField(default=0, help_text="task messages re-sent by the sweeper")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="times a worker claimed the job")
    worker = models.CharField(max_length=255, blank=True, help_text="the worker that claimed it last")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="the worker is alive while this advances")
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def last_seen_at(self) -> datetime | None:
        """The worker's last sign of life (as JobQuerySet.stalled reads it)."""
        return self.heartbeat_at or self.started_at or self.created_at
