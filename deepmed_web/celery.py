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
}

app = Celery("deepmed")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_default_queue = "default"
app.conf.task_routes = TASK_ROUTES
app.conf.include = ["workers.inference", "workers.maintenance"]
app.conf.beat_schedule = {
    # Re-enqueue studies whose task was lost (broker restart before the publish landed).
    "requeue-stalled-studies": {"task": "workers.maintenance.requeue_stalled_studies", "schedule": 120.0},
}
