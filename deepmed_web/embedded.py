"""The embedded mode's in-process Celery worker (no REDIS_URL).

Tasks go through the real Celery machinery — publish on the in-memory transport,
consumed by a WorkController in a daemon thread — so the code path is the one the
separate workers run in production, not `task_always_eager`.
"""

from __future__ import annotations

import logging
import threading

from deepmed_web.celery import QUEUES, app

logger = logging.getLogger(__name__)

_started = threading.Event()


def start_embedded_worker(*, concurrency: int = 1, sweep_every_s: float = 120.0) -> None:
    """Start the worker thread (and a periodic stalled-study sweep) once per process."""
    if _started.is_set():
        return
    _started.set()
    worker = app.WorkController(
        pool_cls="solo",
        concurrency=concurrency,
        queues=list(QUEUES),
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="INFO",
        hostname="embedded@localhost",
    )
    threading.Thread(target=worker.start, name="celery-embedded-worker", daemon=True).start()

    def sweep() -> None:
        from workers.maintenance import requeue_stalled_studies

        requeue_stalled_studies.delay()
        timer = threading.Timer(sweep_every_s, sweep)
        timer.daemon = True
        timer.start()

    timer = threading.Timer(sweep_every_s, sweep)
    timer.daemon = True
    timer.start()
    logger.info("embedded Celery worker started on queues %s", ", ".join(QUEUES))
