from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.maintenance.requeue_stalled_studies")
def requeue_stalled_studies() -> int:
    from apps.studies.services import requeue_stalled_studies as requeue

    return requeue()


@shared_task(name="workers.maintenance.sweep_jobs")
def sweep_jobs() -> dict[str, dict[str, list[int]]]:
    """Celery beat: end the background jobs (training, fine-tune, augmentation, tabular experiment)
    that no worker will end: a dead worker's, and those whose task message was lost (apps.jobs.services)."""
    from apps.jobs.services import sweep_jobs as sweep

    return sweep()


@shared_task(name="workers.maintenance.purge_audit_events")
def purge_audit_events() -> int:
    """Celery beat (daily): delete audit events past DEEPMED_AUDIT_RETENTION_DAYS."""
    from apps.audit import services

    return services.purge_expired_events()
