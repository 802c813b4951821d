"""Celery tasks. Thin: each one calls app services and ml_core; business rules live in services."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready
from django.db import OperationalError

from deepmed_web.readiness import WARMED_QUEUES, expect_warm_up, warm_up_done

logger = logging.getLogger(__name__)

# Per-study tasks: acknowledged only when done (a killed worker's task goes back to the queue),
# and retried with back-off through a database or broker outage instead of failing the study.
STUDY_TASK_OPTIONS = {
    "acks_late": True,
    "autoretry_for": (OperationalError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 120,
    "max_retries": 5,
}


@task_prerun.connect
@task_postrun.connect
def _close_old_db_connections(sender=None, **kwargs) -> None:
    # Django's rule for a request, per task: a connection that broke or outlived CONN_MAX_AGE is
    # closed, one kept is health-checked before reuse (CONN_HEALTH_CHECKS). Celery's own fix-up
    # closes them only every CELERY_DB_REUSE_MAX tasks (settings.py), so they are reused between.
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_process_init.connect
def _expose_worker_metrics(**kwargs) -> None:
    # Inference metrics are observed where inference runs; a separate worker process
    # serves them on its own port for Prometheus to scrape.
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port))


def warm_up(queues: Iterable[str]) -> list[str]:
    """Load what the tasks of ``queues`` need before their first message: the serving predictors
    for `inference`, the explanation engine for `llm`. Returns what was warmed. A failure is
    logged, never raised: the tasks load lazily all the same."""
    from apps.explanations.services import warm_up_engine
    from apps.modelops.services.serving import warm_up_predictors

    steps = {"inference": ("predictors", warm_up_predictors), "llm": ("explanation engine", warm_up_engine)}
    warmed = []
    for queue in sorted(set(queues) & set(WARMED_QUEUES)):  # the queues readiness waits for: one list
        name, step = steps[queue]
        try:
            if step():
                warmed.append(name)
        except Exception:
            logger.warning("warming up the %s failed; the first task will load it", name, exc_info=True)
    if warmed:
        logger.info("warm: %s", ", ".join(warmed))
    return warmed


@worker_ready.connect
def _warm_up_when_ready(sender=None, **kwargs) -> None:
    # In the background, so the worker starts consuming at once: a task that arrives first waits on
    # the same locked, cached loader instead of loading a second copy. One worker per process in
    # services mode; one per queue group (a thread each) in embedded mode.
    from django.conf import settings

    task_consumer = getattr(sender, "task_consumer", None)
    queues = [queue.name for queue in getattr(task_consumer, "queues", ())]
    if not settings.DEEPMED_WARM_UP_WORKERS:
        warm_up_done(queues)  # expected when the process started, switched off since
        return
    expect_warm_up(queues)
    threading.Thread(target=_warm_up_thread, args=(queues,), name="deepmed-warm-up", daemon=True).start()


def _warm_up_thread(queues: list[str]) -> None:
    from django.db import connections

    try:
        warm_up(queues)
    finally:
        connections.close_all()  # this thread's own connections (Django opens one per thread)
        warm_up_done(queues)  # warmed or not: a failed load is logged and retried by the first task
