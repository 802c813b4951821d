"""Reads about background jobs of every kind."""

from __future__ import annotations

from datetime import datetime

from django.apps import apps

from apps.jobs.models import Job


def job_models() -> list[type[Job]]:
    """Every installed concrete job model (what the sweeper looks at)."""
    return [model for model in apps.get_models() if issubclass(model, Job)]


def queue_of(model: type[Job]) -> str:
    """The Celery queue the job's task is routed to (deepmed_web/celery.py)."""
    from deepmed_web.celery import app

    return app.amqp.router.route({}, model.task_name)["queue"].name


def any_job_alive(since: datetime) -> bool:
    """A worker is busy with some job (heartbeat since `since`). Queued jobs may then simply be
    waiting for it: an embedded worker, or a GPU worker, takes one job at a time."""
    return any(model.objects.alive(since).exists() for model in job_models())


def stop_requested(job: Job) -> bool:
    """Polled by a running job's body: True once an admin cancelled it."""
    return type(job).objects.filter(pk=job.pk, cancel_requested=True).exists()
