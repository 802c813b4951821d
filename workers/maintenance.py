from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.maintenance.requeue_stalled_studies")
def requeue_stalled_studies() -> int:
    from apps.studies.services import requeue_stalled_studies as requeue

    return requeue()
