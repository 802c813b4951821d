"""Monitoring tasks (default queue): periodic drift scoring."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.monitoring.compute_drift_scores")
def compute_drift_scores() -> list[int]:
    from apps.monitoring.services import compute_drift_scores as compute

    return [score.pk for score in compute()]
