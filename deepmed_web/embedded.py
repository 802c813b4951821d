"""The embedded mode's in-process Celery workers (no REDIS_URL).

Tasks go through the real Celery machinery — publish on the in-memory transport,
consumed by WorkControllers in daemon threads — so the code path is the one the
separate workers run in production, not `task_always_eager`.

Like services mode's one worker per queue, each group of queues in
settings.DEEPMED_EMBEDDED_CONSUMERS gets its own consumer thread (by default: `inference`;
`llm` + `default`; `training` + `augmentation`), so a study's prediction never waits behind an
explanation, a training run or an augmentation job. The consumers that do not serve inference
run at niceness DEEPMED_EMBEDDED_BACKGROUND_NICE (Linux schedules threads separately: only that
thread, and the threads it starts, are lowered) and a training run uses DEEPMED_TRAINING_THREADS
torch threads, so it leaves the cores to the web server and inference while still advancing.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import signals
from django.conf import settings

from deepmed_web.celery import QUEUES, app

logger = logging.getLogger(__name__)

_started = threading.Event()
_stopping = threading.Event()
_running: dict = {"timers": [], "workers": []}  # (WorkController, thread) per consumer, the beat timers


def consumer_groups(groups=None) -> list[tuple[str, ...]]:
    """The queue groups, one consumer each (settings.DEEPMED_EMBEDDED_CONSUMERS): every queue of
    deepmed_web.celery.QUEUES in exactly one group, or ImproperlyConfigured."""
    from django.core.exceptions import ImproperlyConfigured

    groups = [tuple(group) for group in (groups if groups is not None else settings.DEEPMED_EMBEDDED_CONSUMERS)]
    named = [queue for group in groups for queue in group]
    if sorted(named) != sorted(QUEUES) or any(not group for group in groups):
        raise ImproperlyConfigured(
            f"DEEPMED_EMBEDDED_CONSUMERS must name each of {', '.join(QUEUES)} once, in non-empty groups: {groups}"
        )
    return groups


def start_embedded_worker(*, concurrency: int = 1, periodic_tasks: bool = True, groups=None) -> None:
    """Start the consumer threads once per process (one per queue group, see consumer_groups),
    and with `periodic_tasks` a timer for every entry of the Celery beat schedule (the embedded
    mode's stand-in for `celery beat`)."""
    if _started.is_set():
        return
    groups = consumer_groups(groups)
    _started.set()
    _stopping.clear()
    if settings.DEEPMED_WARM_UP_WORKERS:
        from deepmed_web.readiness import expect_warm_up

        # Before the consumers start: a readiness probe between a consumer's start and its
        # worker_ready signal must not see a cold process as ready.
        expect_warm_up(QUEUES)
    for group in groups:
        worker = app.WorkController(
            pool_cls="solo",
            concurrency=concurrency,
            queues=list(group),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="INFO",
            hostname=f"embedded-{'-'.join(group)}@localhost",
        )
        background = "inference" not in group
        thread = threading.Thread(
            target=_run_worker,
            args=(worker, settings.DEEPMED_EMBEDDED_BACKGROUND_NICE if background else 0),
            name=f"celery-embedded-{'-'.join(group)}",
            daemon=True,
        )
        thread.start()
        _running["workers"].append((worker, thread))
        # One at a time: a WorkController selects its queues on the app (app.amqp.queues, shared
        # by every worker of the process) and its consumer reads that selection when it starts.
        _wait_for_consumer(worker, group)
        # Celery's base WorkController, unlike the `celery worker` command's, never sends
        # worker_ready: send it, so its receivers (the warm-up, workers/__init__.py) run here as
        # they do in a separate worker process.
        signals.worker_ready.send(sender=worker.consumer)
        logger.info("embedded Celery consumer started on %s", ", ".join(group))
    if periodic_tasks:
        for name, every_s, task_name in beat_entries():
            _every(every_s, task_name)
            logger.info("embedded beat: %s (%s) every %g s", name, task_name, every_s)


def _wait_for_consumer(worker, group, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while getattr(getattr(worker, "consumer", None), "task_consumer", None) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded consumer of {', '.join(group)} did not start within {timeout:g} s")
        time.sleep(0.01)
    queues = sorted(q.name for q in worker.consumer.task_consumer.queues)
    if queues != sorted(group):  # another worker's selection leaked in: refuse rather than misroute
        raise RuntimeError(f"the embedded consumer of {', '.join(group)} consumes {', '.join(queues)}")


def _run_worker(worker, nice: int) -> None:
    if nice:
        lower_thread_priority(nice)
    worker.start()


def lower_thread_priority(nice: int) -> bool:
    """Raise this thread's niceness by `nice` (Linux: per thread; a no-op where unsupported).
    True if it was lowered."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    except (AttributeError, OSError):
        logger.info("could not lower the priority of %s", threading.current_thread().name)
        return False


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
    """Stop the consumer threads and the beat timers (tests; the server runs them until exit)."""
    if not _started.is_set():
        return
    _stopping.set()
    for timer in _running["timers"]:
        timer.cancel()
    workers, _running["workers"] = _running["workers"], []
    for worker, _thread in workers:
        worker.stop(in_sighandler=False)
    for _worker, thread in workers:
        thread.join(timeout)
    _running["timers"] = []
    _started.clear()
