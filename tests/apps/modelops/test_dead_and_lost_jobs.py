"""Training runs and augmentation jobs end in a clear state by themselves: a job whose worker
died (killed, out of memory, host restarted) is taken over by its redelivered task or failed by
the sweeper; a job whose task message was lost is sent again once, then failed, and automatic
retraining, which waits while a run is queued, goes on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.jobs.services import claim_job, heartbeat_job
from apps.modelops import services
from apps.modelops.models import AugmentationJob, RunStatus, TrainingRun
from tests.factories import LabeledSampleFactory, TrainingRunFactory
from workers.augmentation import run_augmentation
from workers.maintenance import sweep_jobs

pytestmark = pytest.mark.django_db


def _run(status: str, *, minutes_since_progress: float | None) -> TrainingRun:
    now = timezone.now()
    beat = None if minutes_since_progress is None else now - timedelta(minutes=minutes_since_progress)
    return TrainingRunFactory(
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

    swept = sweep_jobs()  # the beat task

    assert set(swept["modelops.trainingrun"]["stalled"]) == {stalled.pk, never_reported.pk}
    for run in (stalled, alive, queued, done, never_reported):
        run.refresh_from_db()
    assert stalled.status == RunStatus.FAILED and "no progress for 30 minutes" in stalled.error
    assert stalled.finished_at is not None and "failed by the sweeper" in stalled.logs
    assert (alive.status, queued.status, done.status) == (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SUCCEEDED)
    assert AuditEvent.objects.filter(action="training.stalled", object_id=str(stalled.pk)).count() == 1
    assert sweep_jobs()["modelops.trainingrun"]["stalled"] == []  # nothing left to fail: idempotent


def test_progress_reports_keep_a_run_alive(settings):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    run = _run(RunStatus.RUNNING, minutes_since_progress=45)
    services.training._progress_reporter(run)({"phase": "step", "epoch": 1, "step": 3, "loss": 0.5})
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)
    assert sweep_jobs()["modelops.trainingrun"]["stalled"] == []


def test_a_run_taken_over_from_a_dead_worker_says_so_in_its_log(settings, minutes_ago):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    run = claim_job(TrainingRun, _run(RunStatus.QUEUED, minutes_since_progress=None).pk, worker="gpu-1@host")
    assert run.logs == ""
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(45))
    assert claim_job(TrainingRun, run.pk, worker="gpu-2@host").attempts == 2
    run.refresh_from_db()
    assert "taken over by gpu-2@host: the previous worker stopped responding" in run.logs


# --- a worker killed mid-augmentation ---------------------------------------------------------


@pytest.fixture
def killed_augmentation(modelops_settings, admin_user, minutes_ago, django_capture_on_commit_callbacks):
    """An augmentation job whose worker claimed it, reported some progress and was killed (no
    finish, no more heartbeats) longer ago than the stall limit."""
    modelops_settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    with django_capture_on_commit_callbacks(execute=False):
        job = services.start_augmentation_job(label="COVID-19", target_count=20, actor=admin_user)
    job = claim_job(AugmentationJob, job.pk, worker="cpu-1@host")
    heartbeat_job(job, progress={"done": 3, "total": 8})
    AugmentationJob.objects.filter(pk=job.pk).update(heartbeat_at=minutes_ago(45))
    return job


def test_a_killed_augmentation_worker_is_replaced_by_the_redelivered_task(killed_augmentation):
    job = killed_augmentation
    assert run_augmentation(job.pk) == "succeeded"  # acks_late: the message came back to the queue
    job.refresh_from_db()
    assert job.status == RunStatus.SUCCEEDED and job.finished_at and job.attempts == 2
    assert job.progress == {"done": 8, "total": 8} and len(list(Path(job.output_dir).glob("*.png"))) == 16
    assert AuditEvent.objects.filter(action="augmentation.reclaimed", object_id=str(job.pk)).exists()
    assert run_augmentation(job.pk) == "skipped"  # one more copy of the message does nothing


def test_a_killed_augmentation_worker_without_redelivery_is_failed_by_the_sweeper(killed_augmentation):
    job = killed_augmentation
    assert sweep_jobs()["modelops.augmentationjob"]["stalled"] == [job.pk]
    job.refresh_from_db()
    assert job.status == RunStatus.FAILED and job.finished_at
    assert "the worker stopped responding" in job.error
    assert run_augmentation(job.pk) == "skipped"  # a late redelivery leaves the verdict alone
    assert not AugmentationJob.objects.active().exists()


def test_a_live_augmentation_worker_is_left_alone(modelops_settings, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.start_augmentation_job(label="COVID-19", target_count=20, actor=admin_user)
    claim_job(AugmentationJob, job.pk, worker="cpu-1@host")
    assert run_augmentation(job.pk) == "skipped"  # a duplicate message while the worker is alive
    assert sweep_jobs()["modelops.augmentationjob"]["stalled"] == []
    job.refresh_from_db()
    assert job.status == RunStatus.RUNNING and job.attempts == 1


# --- a lost training message ------------------------------------------------------------------


def test_a_lost_training_message_is_sent_again_then_failed_and_retraining_goes_on(
    modelops_settings, published, minutes_ago, django_capture_on_commit_callbacks
):
    modelops_settings.DEEPMED_RETRAIN_LABEL_THRESHOLD = 1
    modelops_settings.DEEPMED_JOB_LOST_MINUTES = 20
    LabeledSampleFactory()
    with django_capture_on_commit_callbacks(execute=False):  # the publish never reached the broker
        run = services.check_retraining_queue()
        assert run is not None and services.check_retraining_queue() is None  # a queued run blocks the next

    TrainingRun.objects.filter(pk=run.pk).update(created_at=minutes_ago(25))
    assert sweep_jobs()["modelops.trainingrun"]["requeued"] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.requeues == 1
    assert [(m["task"], m["queue"], m["args"], m["id"]) for m in published] == [
        ("workers.training.run_training", "training", [run.pk], run.task_id)
    ]

    TrainingRun.objects.filter(pk=run.pk).update(enqueued_at=minutes_ago(25))  # that one was lost too
    assert sweep_jobs()["modelops.trainingrun"]["lost"] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.finished_at
    assert run.error.startswith("the task message was lost") and "failed by the sweeper" in run.logs
    assert AuditEvent.objects.filter(action="training.lost", object_id=str(run.pk)).exists()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retry = services.check_retraining_queue()
    assert retry is not None and retry.pk != run.pk and len(callbacks) == 1  # no longer blocked


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_message_sent_again_is_run_by_the_embedded_worker(
    modelops_settings, minutes_ago, embedded_worker_thread, process_tools
):
    """End to end: the sweeper's new message goes through the in-memory broker to the in-process worker."""
    modelops_settings.DEEPMED_JOB_LOST_MINUTES = 20
    job = AugmentationJob.objects.create(label="COVID-19", target_count=20)  # its first message never went out
    AugmentationJob.objects.filter(pk=job.pk).update(created_at=minutes_ago(25))

    assert sweep_jobs()["modelops.augmentationjob"]["requeued"] == [job.pk]

    def settled() -> bool:
        job.refresh_from_db()
        return job.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

    process_tools.wait_until(settled, timeout=120, what="the augmentation job to finish")
    assert job.status == RunStatus.SUCCEEDED, job.error
    assert job.attempts == 1 and job.requeues == 1 and job.worker  # the host of the worker that ran it
