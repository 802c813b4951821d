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
_stopping = threading.Event()
_running: dict = {"timers": []}  # the WorkController, its thread and the beat timers


def start_embedded_worker(*, concurrency: int = 1, periodic_tasks: bool = True) -> None:
    """Start the worker thread once per process, and with `periodic_tasks` a timer for every
    entry of the Celery beat schedule (the embedded mode's stand-in for `celery beat`)."""
    if _started.is_set():
        return
    _started.set()
    _stopping.clear()
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
    thread = threading.Thread(target=worker.start, name="celery-embedded-worker", daemon=True)
    thread.start()
    _running.update(worker=worker, thread=thread)
    if periodic_tasks:
        for name, every_s, task_name in beat_entries():
            _every(every_s, task_name)
            logger.info("embedded beat: %s (%s) every %g s", name, task_name, every_s)
    logger.info("embedded Celery worker started on queues %s", ", ".join(QUEUES))


def beat_entries() -> list[tuple[str, float, str]]:
    """(name, seconds, task) for each periodic task of deepmed_web/celery.py, the fixed ones and
    those whose interval comes from settings (added once the app is finalised)."""
    app.finalize()
    entries = []
    for name, entry in sorted(app.conf.beat_schedule.items()):
        schedule = entry["schedule"]
        seconds = float(schedule) if isinstance(schedule, (int, float)) else schedule.run_every.total_seconds()
        entries.append((name, seconds, entry["task"]))
    return entries


def _every(seconds: float, task_name: str, stop: threading.Event = _stopping) -> None:
    def tick() -> None:
        try:
            app.send_task(task_name)
        except Exception:
            logger.exception("embedded beat could not send %s", task_name)
        _every(seconds, task_name, stop)

    if stop.is_set():
        return
    timer = threading.Timer(seconds, tick)
    timer.daemon = True
    timer.start()
    _running["timers"] = [t for t in _running["timers"] if t.is_alive()] + [timer]


def stop_embedded_worker(timeout: float = 30.0) -> None:
    """Stop the worker thread and the beat timers (tests; the server runs it until exit)."""
    if not _started.is_set():
        return
    _stopping.set()
    for timer in _running["timers"]:
        timer.cancel()
    worker, thread = _running.pop("worker", None), _running.pop("thread", None)
    if worker is not None:
        worker.stop(in_sighandler=False)
        thread.join(timeout)
    _running["timers"] = []
    _started.clear()
