"""Augmentation queue: materialise augmented copies of an under-represented class."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.augmentation.run_augmentation", bind=True, acks_late=True)
def run_augmentation(self, job_id: int) -> str:
    from apps.modelops.services.augmentation import execute_augmentation_job

    job = execute_augmentation_job(job_id, worker=self.request.hostname or "")
    return "skipped" if job is None else job.status
