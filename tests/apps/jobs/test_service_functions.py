"""The one job lifecycle: enqueue after commit (a refusing broker fails the job), claim once,
heartbeat, finish/fail/cancel, and the sweeper's rules for dead workers and lost messages."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.jobs import services
from apps.jobs.models import JobStatus
from apps.modelops.models import TrainingRun
from tests.factories import TabularExperimentFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db


# --- enqueue ------------------------------------------------------------------------------


def test_enqueue_sends_the_task_once_committed_and_records_its_id(published, django_capture_on_commit_callbacks):
    run = TrainingRunFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.enqueue_job(run)
        assert published == []  # nothing goes out before the row is committed
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert published == [
        {"task": "workers.training.run_training", "id": run.task_id, "queue": "training", "args": [run.pk]}
    ]
    assert run.status == JobStatus.QUEUED and timezone.now() - run.enqueued_at < timedelta(minutes=1)


def test_a_job_cancelled_before_commit_is_not_sent(published, django_capture_on_commit_callbacks):
    run = TrainingRunFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_job(run)
        services.cancel_job(run)
    assert published == []
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.task_id == ""


@pytest.mark.slow
def test_a_broker_that_refuses_the_message_fails_the_job_with_the_reason(
    celery_broker, published, job_changes, django_capture_on_commit_callbacks
):
    celery_broker("redis://127.0.0.1:1/0")  # nothing listens there
    run = TrainingRunFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_job(run)  # the request that started the job does not raise
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.finished_at is not None
    assert run.error.startswith("the task queue refused the job") and "broker" in run.error
    assert published == [] and job_changes == [("TrainingRun", run.pk, "finished")]
    assert AuditEvent.objects.filter(action="training.enqueue_failed", object_id=str(run.pk)).exists()


# --- claim, heartbeat, finish -------------------------------------------------------------


def test_claim_moves_a_queued_job_to_running_once(job_changes):
    run = TrainingRunFactory()
    claimed = services.claim_job(TrainingRun, run.pk, worker="gpu@host")
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 1 and claimed.worker == "gpu@host"
    assert claimed.started_at and claimed.heartbeat_at == claimed.started_at
    # A duplicate message while the worker is alive (fresh heartbeat) does nothing.
    assert services.claim_job(TrainingRun, run.pk, worker="cpu@host") is None
    run.refresh_from_db()
    assert (run.attempts, run.worker) == (1, "gpu@host")
    assert job_changes == [("TrainingRun", run.pk, "claimed")]


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_finished_job_is_never_claimed(status):
    run = TrainingRunFactory(status=status)
    assert services.claim_job(TrainingRun, run.pk) is None
    assert services.claim_job(TrainingRun, 999_999) is None  # deleted
    run.refresh_from_db()
    assert run.status == status and run.attempts == 0


def test_a_running_job_whose_worker_died_is_taken_over_by_its_redelivered_task(settings, minutes_ago):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    run = services.claim_job(TrainingRun, TrainingRunFactory().pk, worker="dead@host")
    services.heartbeat_job(run, progress={"epoch": 3})
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(45))  # the worker was killed

    again = services.claim_job(TrainingRun, run.pk, worker="next@host")
    assert again.status == JobStatus.RUNNING and again.attempts == 2 and again.worker == "next@host"
    assert again.progress == {} and timezone.now() - again.heartbeat_at < timedelta(minutes=1)
    event = AuditEvent.objects.get(action="training.reclaimed", object_id=str(run.pk))
    assert event.detail == {"previous_worker": "dead@host", "attempts": 1}

    # Its second worker dies too: the job is failed rather than run a third time.
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(45))
    assert services.claim_job(TrainingRun, run.pk, worker="third@host") is None
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.finished_at and run.attempts == 2
    assert "stopped responding 2 times" in run.error


def test_a_dead_workers_job_that_was_being_cancelled_ends_cancelled(settings, minutes_ago):
    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    run = services.claim_job(TrainingRun, TrainingRunFactory().pk)
    services.cancel_job(run)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(45))
    assert services.claim_job(TrainingRun, run.pk) is None
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.finished_at


def test_heartbeat_stamps_progress_and_extra_fields(job_changes, minutes_ago):
    run = services.claim_job(TrainingRun, TrainingRunFactory().pk)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(10))
    services.heartbeat_job(run)
    services.heartbeat_job(run, progress={"epoch": 1}, logs="epoch 1\n")
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)
    assert run.progress == {"epoch": 1} and run.logs == "epoch 1\n"
    assert [change for *_, change in job_changes] == ["claimed", "progress"]  # a bare beat is not news


def test_keep_alive_stamps_the_row_while_the_block_runs(minutes_ago):
    """Long steps without progress reports (packaging, a LoRA subprocess) still show a live worker."""
    run = TrainingRunFactory(status=JobStatus.RUNNING, heartbeat_at=minutes_ago(45))
    with services.keep_alive(run, every_s=3600):
        run.refresh_from_db()
        assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)  # stamped on entry
    started = time.monotonic()
    with services.keep_alive(run, every_s=3600):
        pass
    assert time.monotonic() - started < 5  # leaving the block stops the thread at once


@pytest.mark.django_db(transaction=True)  # the thread writes through its own connection
def test_keep_alive_beats_from_its_thread(minutes_ago):
    run = TrainingRunFactory(status=JobStatus.RUNNING)
    with services.keep_alive(run, every_s=0.05):
        TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=minutes_ago(45))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if timezone.now() - run.heartbeat_at < timedelta(minutes=1):
                break
            time.sleep(0.05)
    assert timezone.now() - run.heartbeat_at < timedelta(minutes=1)


def test_finish_and_fail_record_the_outcome(job_changes):
    done = services.claim_job(TrainingRun, TrainingRunFactory().pk)
    done.mlflow_run_id = "abc"
    services.finish_job(done, update_fields=["mlflow_run_id"])
    broken = services.claim_job(TrainingRun, TrainingRunFactory().pk)
    services.fail_job(broken, "ValueError: no images")
    done.refresh_from_db()
    broken.refresh_from_db()
    assert (done.status, done.mlflow_run_id, done.error) == (JobStatus.SUCCEEDED, "abc", "")
    assert (broken.status, broken.error) == (JobStatus.FAILED, "ValueError: no images")
    assert done.finished_at and broken.finished_at
    assert [change for *_, change in job_changes].count("finished") == 2
    with pytest.raises(ValueError):
        services.finish_job(done, JobStatus.RUNNING)


def test_cancel_ends_a_queued_job_at_once_and_asks_a_running_one_to_stop(admin_user):
    from apps.jobs.selectors import stop_requested

    queued, running = TrainingRunFactory(), services.claim_job(TrainingRun, TrainingRunFactory().pk)
    finished = TrainingRunFactory(status=JobStatus.SUCCEEDED)
    assert services.cancel_job(queued, actor=admin_user).status == JobStatus.CANCELLED
    assert not stop_requested(running)
    assert services.cancel_job(running, actor=admin_user).status == JobStatus.RUNNING
    assert stop_requested(running)
    assert services.cancel_job(finished, actor=admin_user).status == JobStatus.SUCCEEDED
    assert not stop_requested(finished)
    assert AuditEvent.objects.filter(action="training.cancel", actor=admin_user).count() == 2


# --- the sweeper ----------------------------------------------------------------------------


def test_sweep_fails_running_jobs_whose_worker_stopped_responding(settings, job_changes, minutes_ago):
    from apps.modelops.models import AugmentationJob

    settings.DEEPMED_TRAINING_STALL_MINUTES = 30
    dead = TrainingRunFactory(status=JobStatus.RUNNING, started_at=minutes_ago(120), heartbeat_at=minutes_ago(45))
    alive = TrainingRunFactory(status=JobStatus.RUNNING, started_at=minutes_ago(120), heartbeat_at=minutes_ago(5))
    dead_augmentation = AugmentationJob.objects.create(label="NORMAL", target_count=5, status=JobStatus.RUNNING)
    AugmentationJob.objects.filter(pk=dead_augmentation.pk).update(started_at=minutes_ago(40))
    dead_tabular = TabularExperimentFactory(status=JobStatus.RUNNING, heartbeat_at=minutes_ago(45))

    report = services.sweep_jobs()

    assert report["modelops.trainingrun"]["stalled"] == [dead.pk]
    assert report["modelops.augmentationjob"]["stalled"] == [dead_augmentation.pk]
    assert report["tabular.tabularexperiment"]["stalled"] == [dead_tabular.pk]  # the fourth kind of job too
    dead_tabular.refresh_from_db()
    assert dead_tabular.status == JobStatus.FAILED and "the worker stopped responding" in dead_tabular.error
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == JobStatus.FAILED and dead.finished_at
    assert "no progress for 30 minutes: the worker stopped responding" in dead.error
    assert alive.status == JobStatus.RUNNING
    assert ("TrainingRun", dead.pk, "stalled") in job_changes
    assert AuditEvent.objects.filter(action="augmentation.stalled", object_id=str(dead_augmentation.pk)).exists()
    assert services.sweep_jobs()["modelops.trainingrun"] == {"stalled": [], "requeued": [], "lost": []}


def test_sweep_resends_a_lost_message_once_then_fails_the_job(settings, published, minutes_ago):
    settings.DEEPMED_JOB_LOST_MINUTES = 20
    lost = TrainingRunFactory(created_at=minutes_ago(25))  # its message never reached the broker
    waiting = TrainingRunFactory(created_at=minutes_ago(5))

    assert services.sweep_jobs()["modelops.trainingrun"]["requeued"] == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == JobStatus.QUEUED and lost.requeues == 1
    assert published == [
        {"task": "workers.training.run_training", "id": lost.task_id, "queue": "training", "args": [lost.pk]}
    ]
    assert services.sweep_jobs()["modelops.trainingrun"]["requeued"] == []  # just sent again: give it time

    TrainingRun.objects.filter(pk=lost.pk).update(enqueued_at=minutes_ago(25))  # ... and still no worker
    assert services.sweep_jobs()["modelops.trainingrun"]["lost"] == [lost.pk]
    lost.refresh_from_db()
    waiting.refresh_from_db()
    assert lost.status == JobStatus.FAILED and lost.finished_at
    assert lost.error.startswith("the task message was lost") and "'training' queue" in lost.error
    assert waiting.status == JobStatus.QUEUED and len(published) == 1
    actions = list(AuditEvent.objects.filter(object_id=str(lost.pk)).values_list("action", flat=True))
    assert {"training.requeued", "training.lost"} <= set(actions)


def test_a_queued_job_behind_a_busy_worker_is_not_lost(settings, published, minutes_ago):
    """One worker (embedded, or the GPU one) takes one job at a time: the next one waits, unclaimed."""
    from apps.explanations.models import ExplainerFinetuneRun

    settings.DEEPMED_JOB_LOST_MINUTES = 20
    ExplainerFinetuneRun.objects.create(
        status=JobStatus.RUNNING, started_at=minutes_ago(90), heartbeat_at=timezone.now()
    )
    waiting = TrainingRunFactory(created_at=minutes_ago(60))
    assert services.sweep_jobs()["modelops.trainingrun"] == {"stalled": [], "requeued": [], "lost": []}
    waiting.refresh_from_db()
    assert waiting.status == JobStatus.QUEUED and waiting.requeues == 0 and published == []
