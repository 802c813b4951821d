"""The Celery application: queues and routing live here, in one place.

Queues: inference, llm, training, augmentation, default. A CPU worker usually takes
`default,inference,llm,augmentation`; a GPU worker takes `training,inference,llm`.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")

QUEUES = ("inference", "llm", "training", "augmentation", "default")

# Task module prefix -> queue. Tasks live in workers/<queue>.py.
TASK_ROUTES = {
    "workers.inference.*": {"queue": "inference"},
    "workers.llm.*": {"queue": "llm"},
    "workers.training.*": {"queue": "training"},
    "workers.augmentation.*": {"queue": "augmentation"},
    "workers.maintenance.*": {"queue": "default"},
    "workers.monitoring.*": {"queue": "default"},
}

app = Celery("deepmed")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_default_queue = "default"
app.conf.task_routes = TASK_ROUTES
app.conf.include = [
    "workers.inference",
    "workers.maintenance",
    "workers.llm",
    "workers.training",
    "workers.augmentation",
    "workers.monitoring",
]
app.conf.beat_schedule = {
    # Re-enqueue studies whose task was lost (broker restart before the publish landed).
    "requeue-stalled-studies": {"task": "workers.maintenance.requeue_stalled_studies", "schedule": 120.0},
    # Re-enqueue explanations whose task was lost (the prediction stays visible meanwhile).
    "requeue-unexplained-studies": {"task": "workers.llm.requeue_unexplained_studies", "schedule": 300.0},
    # Background jobs (training, fine-tune, augmentation): fail those whose worker died (no heartbeat
    # for DEEPMED_TRAINING_STALL_MINUTES); re-send, then fail, those whose task message was lost
    # (DEEPMED_JOB_LOST_MINUTES). On the default queue: a dead training worker cannot hold it up.
    "sweep-jobs": {"task": "workers.maintenance.sweep_jobs", "schedule": 300.0},
    # Delete audit events past their retention (DEEPMED_AUDIT_RETENTION_DAYS; 0 keeps them all).
    "purge-audit-events": {"task": "workers.maintenance.purge_audit_events", "schedule": 86400.0},
}


@app.on_after_finalize.connect
def _settings_driven_schedules(sender, **kwargs):
    """Periodic tasks whose interval is a Django setting (read once settings are loaded)."""
    from django.conf import settings

    # Start an automatic training run when enough physician labels arrived or agreement dropped.
    sender.add_periodic_task(
        float(settings.DEEPMED_RETRAIN_CHECK_SECONDS),
        sender.signature("workers.training.check_retraining_queue"),
        name="check-retraining-queue",
    )
    # Drift of the serving models' inputs/outputs vs their reference (apps/monitoring).
    sender.add_periodic_task(
        float(settings.DEEPMED_DRIFT_CHECK_SECONDS),
        sender.signature("workers.monitoring.compute_drift_scores"),
        name="compute-drift-scores",
    )
