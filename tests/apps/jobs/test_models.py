"""JobQuerySet: which jobs are active, stalled (a dead worker), alive (a busy worker) or lost
(a task message no worker took)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.jobs.models import Job, JobStatus
from apps.jobs.selectors import job_models
from apps.modelops.models import AugmentationJob, TrainingRun
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db


def test_every_kind_of_job_shares_the_lifecycle():
    from apps.explanations.models import ExplainerFinetuneRun
    from apps.tabular.models import TabularExperiment

    assert set(job_models()) == {TrainingRun, AugmentationJob, ExplainerFinetuneRun, TabularExperiment}
    for model in job_models():
        assert issubclass(model, Job) and model.task_name and model.audit_prefix
        assert model.objects.model is model and hasattr(model.objects, "stalled")
    # The tables and stored status values of before stay as they were.
    assert TrainingRun._meta.db_table == "modelops_trainingrun"
    assert ExplainerFinetuneRun._meta.db_table == "explanations_explainerfinetunerun"
    assert list(JobStatus.values) == ["queued", "running", "succeeded", "failed", "cancelled"]


def test_active_jobs_are_queued_or_running():
    queued, running = TrainingRunFactory(status=JobStatus.QUEUED), TrainingRunFactory(status=JobStatus.RUNNING)
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        TrainingRunFactory(status=status)
    assert set(TrainingRun.objects.active()) == {queued, running}
    assert queued.is_active and not TrainingRunFactory(status=JobStatus.FAILED).is_active


def test_stalled_is_running_without_a_sign_of_life_since_the_cutoff(minutes_ago):
    beat_long_ago = TrainingRunFactory(
        status=JobStatus.RUNNING, started_at=minutes_ago(300), heartbeat_at=minutes_ago(90)
    )
    never_beat = TrainingRunFactory(status=JobStatus.RUNNING, started_at=minutes_ago(90), heartbeat_at=None)
    beat_lately = TrainingRunFactory(status=JobStatus.RUNNING, started_at=minutes_ago(300), heartbeat_at=minutes_ago(5))
    TrainingRunFactory(status=JobStatus.SUCCEEDED, started_at=minutes_ago(300), heartbeat_at=minutes_ago(200))
    TrainingRunFactory(status=JobStatus.QUEUED, created_at=minutes_ago(300))

    assert set(TrainingRun.objects.stalled(minutes_ago(60))) == {beat_long_ago, never_beat}
    assert list(TrainingRun.objects.alive(minutes_ago(60))) == [beat_lately]
    assert beat_long_ago.last_seen_at == beat_long_ago.heartbeat_at
    assert never_beat.last_seen_at == never_beat.started_at


def test_lost_is_queued_and_unclaimed_since_its_message_was_sent(minutes_ago):
    sent_long_ago = TrainingRunFactory(
        status=JobStatus.QUEUED, created_at=minutes_ago(300), enqueued_at=minutes_ago(45)
    )
    never_sent = TrainingRunFactory(status=JobStatus.QUEUED, created_at=minutes_ago(45), enqueued_at=None)
    sent_again_lately = TrainingRunFactory(
        status=JobStatus.QUEUED, created_at=minutes_ago(300), enqueued_at=minutes_ago(5)
    )
    TrainingRunFactory(status=JobStatus.RUNNING, created_at=minutes_ago(300), enqueued_at=minutes_ago(300))

    assert set(TrainingRun.objects.lost(minutes_ago(30))) == {sent_long_ago, never_sent}
    assert sent_again_lately not in TrainingRun.objects.lost(timezone.now() - timezone.timedelta(minutes=30))
