"""Writes of the background-job lifecycle, one set for every kind of job.

enqueue (after commit; a refusing broker fails the job) → claim (queued → running; a
redelivered task takes over a job whose worker died) → heartbeat / keep_alive → finish or fail;
cancel; and the sweeper, which ends the jobs no worker will ever end:
- running without a heartbeat for DEEPMED_TRAINING_STALL_MINUTES: failed (the worker is gone);
- queued and unclaimed for DEEPMED_JOB_LOST_MINUTES while no worker is busy: the task message was
  lost (broker restart, publish that never landed): sent again once, then failed.
A failed job no longer counts as active, so nothing waits on it (e.g. automatic retraining).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import record_event
from apps.core import tasks
from apps.jobs import selectors
from apps.jobs.models import ACTIVE_STATUSES, FINAL_STATUSES, Job, JobStatus
from apps.jobs.signals import job_changed

logger = logging.getLogger(__name__)

J = TypeVar("J", bound=Job)
R = TypeVar("R")

HEARTBEAT_SECONDS = 60.0  # keep_alive's stamping period
MAX_ATTEMPTS = 2  # claims of one job: a job whose worker died twice probably kills it; failed then
MAX_REQUEUES = 1  # re-sends of a lost task message before the job is failed


def _changed(job: Job, change: str) -> None:
    job_changed.send(sender=type(job), job=job, change=change)


def _audit(job: Job, what: str, **detail: Any) -> None:
    record_event(actor=None, action=f"{job.audit_prefix}.{what}", obj=job, detail=detail)


def stall_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(minutes=settings.DEEPMED_TRAINING_STALL_MINUTES)


# --- enqueue --------------------------------------------------------------------------------


def enqueue_job(job: Job) -> None:
    """Send the job's task once the current transaction commits (the worker must find the row)."""
    model, pk = type(job), job.pk
    transaction.on_commit(lambda: publish_job(model, pk))


def publish_job(model: type[Job], pk: int) -> bool:
    """Send the task message now, recording its id. A broker that refuses it (as inference's
    enqueue, no retry loop in the request) fails the job with the reason: nothing would ever run it."""
    from celery import uuid

    task_id = uuid()
    # Recorded first: a fast worker may claim the job before publish returns.
    if not model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(task_id=task_id, enqueued_at=timezone.now()):
        return False  # cancelled (or claimed) meanwhile
    try:
        tasks.enqueue(model.task_name, pk, task_id=task_id)
    except Exception as exc:
        logger.warning("could not enqueue %s %s", model.__name__, pk, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
        job = _fail_where(
            model.objects.filter(pk=pk, status=JobStatus.QUEUED),
            f"the task queue refused the job ({reason}). Start it again once the broker is back.",
        )
        if job is not None:
            _audit(job, "enqueue_failed", error=reason)
            _changed(job, "finished")
        return False
    return True


# --- the worker's side ----------------------------------------------------------------------


def claim_job(model: type[J], pk: int, *, worker: str = "") -> J | None:
    """queued → running for the worker whose task arrived; None when there is nothing to run
    (finished, cancelled, or running under a live worker: a duplicate message).

    A job still `running` without a heartbeat for the stall limit lost its worker (killed,
    restarted): its redelivered task takes it over instead of skipping it, up to MAX_ATTEMPTS
    claims; past that the job is failed rather than kill another worker."""
    now = timezone.now()
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=pk).first()
        if job is None:
            return None
        stale = job.status == JobStatus.RUNNING and job.last_seen_at < stall_cutoff(now)
        if job.status != JobStatus.QUEUED and not stale:
            return None
        # Written only if the row is still as read: of two deliveries racing, one wins (SQLite
        # has no row locks).
        unchanged = model.objects.filter(pk=pk, status=job.status, attempts=job.attempts)
        if stale and (job.cancel_requested or job.attempts >= MAX_ATTEMPTS):
            status, error = (
                (JobStatus.CANCELLED, "")
                if job.cancel_requested
                else (
                    JobStatus.FAILED,
                    f"the worker stopped responding {job.attempts} times while running this job "
                    "(killed, out of memory or restarted); it is not tried again.",
                )
            )
            if unchanged.update(status=status, error=error, finished_at=now):
                job.status, job.error, job.finished_at = status, error, now
                _audit(job, "stalled", attempts=job.attempts)
                transaction.on_commit(lambda: _changed(job, "finished"))
            return None
        progress = {} if stale else job.progress  # a dead attempt's progress says nothing about this one
        if not unchanged.update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=job.attempts + 1,
            worker=worker,
            progress=progress,
        ):
            return None
        previous_worker, previous_attempts = job.worker, job.attempts
        job.status, job.started_at, job.heartbeat_at, job.progress = JobStatus.RUNNING, now, now, progress
        job.attempts, job.worker = job.attempts + 1, worker
        if stale:
            _audit(job, "reclaimed", previous_worker=previous_worker, attempts=previous_attempts)
    _changed(job, "claimed")
    return job


def heartbeat_job(job: Job, *, progress: dict | None = None, **fields: Any) -> None:
    """The worker is alive (and, with `progress`, how far it got); other `fields` of the job
    (a log) are written in the same update."""
    job.heartbeat_at = timezone.now()
    updates = {"heartbeat_at": job.heartbeat_at, **fields}
    if progress is not None:
        job.progress = updates["progress"] = progress
    for name, value in fields.items():
        setattr(job, name, value)
    type(job).objects.filter(pk=job.pk).update(**updates)
    if progress is not None:
        _changed(job, "progress")


@contextmanager
def keep_alive(job: Job, *, every_s: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """While the block runs, stamp `heartbeat_at` every `every_s` seconds from a side thread: a
    long step without progress reports (packaging, a LoRA subprocess) still shows a live worker,
    and a dead worker stops stamping (see sweep_jobs)."""
    from django.db import connection

    model, pk = type(job), job.pk
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every_s):
                try:
                    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
                except Exception:
                    # A database blip must not silence a live worker for good: try again next beat.
                    logger.warning("heartbeat of %s %s failed", model.__name__, pk, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def finish_job(job: J, status: str = JobStatus.SUCCEEDED, *, error: str = "", update_fields: Iterable[str] = ()) -> J:
    """running → succeeded | failed | cancelled, saving the fields the job's body set too. Written
    even if the sweeper failed the job meanwhile: a worker that was only slow has the last word."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final status")
    job.status, job.error, job.finished_at = status, error, timezone.now()
    job.save(update_fields=list(dict.fromkeys(["status", "error", "finished_at", "progress", *update_fields])))
    _changed(job, "finished")
    return job


def fail_job(job: J, error: str, *, update_fields: Iterable[str] = ()) -> J:
    return finish_job(job, JobStatus.FAILED, error=error, update_fields=update_fields)


def run_training_computation(fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """A training or augmentation job's long ml_core call (image training, packaging, a tabular
    grid search, a LoRA fine-tune, materialising augmented images): `fn(*args, **kwargs)`.

    With DEEPMED_TRAINING_IN_CHILD_PROCESS (embedded mode, where the consumer shares its process
    with the web server and inference) in a child process at DEEPMED_EMBEDDED_BACKGROUND_NICE with
    DEEPMED_TRAINING_THREADS (ml_core.child_process): the loop's Python then cannot hold the GIL
    they need. `progress` and `should_stop` keyword arguments work across the boundary (called
    here, with this thread's database connection); a child that dies raises ChildDied, which fails
    the job like any error. Otherwise (a services-mode worker is a process of its own) in this
    thread."""
    if not settings.DEEPMED_TRAINING_IN_CHILD_PROCESS:
        return fn(*args, **kwargs)
    from ml_core.child_process import run_in_child

    return run_in_child(
        fn,
        *args,
        nice=settings.DEEPMED_EMBEDDED_BACKGROUND_NICE,
        threads=settings.DEEPMED_TRAINING_THREADS,
        **kwargs,
    )


def cancel_job(job: J, *, actor=None) -> J:
    """A queued job is cancelled at once; a running one is asked to stop (its body polls
    selectors.stop_requested)."""
    model = type(job)
    with transaction.atomic():
        job = model.objects.select_for_update().get(pk=job.pk)
        if job.status not in ACTIVE_STATUSES:
            return job
        job.cancel_requested = True
        fields = ["cancel_requested"]
        if job.status == JobStatus.QUEUED:
            job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
            fields += ["status", "finished_at"]
        job.save(update_fields=fields)
        record_event(actor=actor, action=f"{job.audit_prefix}.cancel", obj=job)
    _changed(job, "cancelled")
    return job


# --- the sweeper ------------------------------------------------------------------------------


def _fail_where(rows, error: str) -> Job | None:
    """Fail the one job `rows` selects if it still matches (a worker may have moved it on)."""
    pk = rows.values_list("pk", flat=True).first()
    if pk is None or not rows.filter(pk=pk).update(status=JobStatus.FAILED, error=error, finished_at=timezone.now()):
        return None
    return rows.model.objects.get(pk=pk)


def sweep_jobs(*, now: datetime | None = None) -> dict[str, dict[str, list[int]]]:
    """The periodic sweeper (beat: workers.maintenance.sweep_jobs) over every kind of job.
    Returns {model label: {"stalled": [...], "requeued": [...], "lost": [...]}} (job ids)."""
    now = now or timezone.now()
    stall_minutes = settings.DEEPMED_TRAINING_STALL_MINUTES
    lost_minutes = settings.DEEPMED_JOB_LOST_MINUTES
    lost_cutoff = now - timedelta(minutes=lost_minutes)
    # A busy worker explains a waiting job: only an idle one makes an unclaimed message lost.
    busy = selectors.any_job_alive(stall_cutoff(now))
    report = {}
    for model in selectors.job_models():
        swept = {"stalled": [], "requeued": [], "lost": []}
        for pk in model.objects.stalled(stall_cutoff(now)).values_list("pk", flat=True):
            job = _fail_where(
                model.objects.filter(pk=pk).stalled(stall_cutoff(now)),
                f"no progress for {stall_minutes} minutes: the worker stopped responding (killed, out of "
                "memory or restarted). Start a new one.",
            )
            if job is not None:
                _audit(job, "stalled", minutes=stall_minutes)
                _changed(job, "stalled")
                swept["stalled"].append(pk)
        for pk in [] if busy else model.objects.lost(lost_cutoff).values_list("pk", flat=True):
            unclaimed = model.objects.filter(pk=pk).lost(lost_cutoff)
            if unclaimed.filter(requeues__lt=MAX_REQUEUES).update(requeues=F("requeues") + 1):
                job = model.objects.get(pk=pk)
                _audit(job, "requeued", minutes=lost_minutes, previous_task_id=job.task_id)
                _changed(job, "requeued")
                publish_job(model, pk)
                swept["requeued"].append(pk)
                continue
            job = _fail_where(
                unclaimed,
                f"the task message was lost: no worker took the job in {lost_minutes} minutes, even after "
                f"it was sent again (is a worker consuming the '{selectors.queue_of(model)}' queue?). "
                "Start a new one.",
            )
            if job is not None:
                _audit(job, "lost", minutes=lost_minutes, requeues=job.requeues)
                _changed(job, "lost")
                swept["lost"].append(pk)
        report[model._meta.label_lower] = swept
    return report
