"""A training run whose worker died (killed, out of memory, host restarted) must not stay
`running` for ever: with no progress for DEEPMED_TRAINING_STALL_MINUTES it is failed, with a
reason the admin can act on, audited and pushed to the console."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.modelops import services
from apps.modelops.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


def _run(status: str, *, minutes_since_progress: float | None) -> TrainingRun:
    now = timezone.now()
    beat = None if minutes_since_progress is None else now - timedelta(minutes=minutes_since_progress)
    return TrainingRun.objects.create(
        status=status,
        started_at=now - timedelta(hours=3),
        heartbeat_at=beat,
        params={"architecture": "cxr_tiny", "tier": "quick"},
    )


def test_only_running_runs_without_recent_progress_are_failed(settings):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    stalled = _run(RunStatus.RUNNING, minutes_since_progress=45)
    alive = _run(RunStatus.RUNNING, minutes_since_progress=5)
    queued = _run(RunStatus.QUEUED, minutes_since_progress=None)
    done = _run(RunStatus.SUCCEEDED, minutes_since_progress=300)
    never_reported = _run(RunStatus.RUNNING, minutes_since_progress=None)  # started 3 h ago, not a word since

    failed = services.fail_stalled_runs()

    assert {run.pk for run in failed} == {stalled.pk, never_reported.pk}
    for run in (stalled, alive, queued, done, never_reported):
        run.refresh_from_db()
    assert stalled.status == RunStatus.FAILED and "no progress for 30 minutes" in stalled.error
    assert stalled.finished_at is not None and "worker" in stalled.logs
    assert (alive.status, queued.status, done.status) == (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SUCCEEDED)
    assert AuditEvent.objects.filter(action="training.stalled", object_id=str(stalled.pk)).count() == 1
    assert services.fail_stalled_runs() == []  # nothing left to fail: idempotent


def test_progress_reports_keep_a_run_alive(settings):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    run = _run(RunStatus.RUNNING, minutes_since_progress=45)
    services._progress_reporter(run)({"phase": "step", "epoch": 1, "step": 3, "loss": 0.5})
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)
    assert services.fail_stalled_runs() == []


def test_a_heartbeat_thread_stamps_the_row_while_the_block_runs(settings):
    """Long steps without progress reports (packaging, a LoRA subprocess) still show a live worker."""
    import time

    run = _run(RunStatus.RUNNING, minutes_since_progress=45)
    with services.heartbeat(TrainingRun, run.pk, every_s=3600):
        run.refresh_from_db()
        assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)  # stamped on entry
    run.heartbeat_at = timezone.now() - timedelta(minutes=45)
    run.save(update_fields=["heartbeat_at"])
    started = time.monotonic()
    with services.heartbeat(TrainingRun, run.pk, every_s=3600):
        pass
    assert time.monotonic() - started < 5  # leaving the block stops the thread at once


def test_stalled_explainer_finetunes_are_failed_too(settings):
    from apps.explanations.models import ExplainerFinetuneRun
    from apps.explanations.services import fail_stalled_finetunes

    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    old = timezone.now() - timedelta(minutes=90)
    dead = ExplainerFinetuneRun.objects.create(status=RunStatus.RUNNING, started_at=old, heartbeat_at=old)
    alive = ExplainerFinetuneRun.objects.create(status=RunStatus.RUNNING, started_at=old, heartbeat_at=timezone.now())
    assert [run.pk for run in fail_stalled_finetunes()] == [dead.pk]
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == RunStatus.FAILED and "no progress for 30 minutes" in dead.error and dead.finished_at
    assert alive.status == RunStatus.RUNNING
    assert AuditEvent.objects.filter(action="explainer.finetune.stalled", object_id=str(dead.pk)).exists()
