"""The automatic retraining trigger: fires at the label threshold and not before; low physician
agreement of the champion also fires; the trigger and its reason are recorded."""

from __future__ import annotations

import pytest

from apps.modelops import selectors, services
from apps.modelops.models import RunStatus, TrainingRun, Trigger
from tests.factories import LabeledSampleFactory, PredictionFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db


def test_trigger_fires_at_the_threshold_and_not_before(modelops_settings, django_capture_on_commit_callbacks):
    modelops_settings.DEEPMED_RETRAIN_LABEL_THRESHOLD = 3
    LabeledSampleFactory.create_batch(2)
    LabeledSampleFactory.create_batch(5, excluded=True)  # withdrawn labels never count
    with django_capture_on_commit_callbacks(execute=False):
        assert services.check_retraining_queue() is None
    assert not TrainingRun.objects.exists()

    LabeledSampleFactory(label="NORMAL")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.check_retraining_queue()
    assert run is not None and len(callbacks) == 1  # enqueued on the training queue after commit
    assert run.trigger == Trigger.NEW_LABELS
    assert "3 confirmed labels" in run.trigger_reason
    assert {k: run.params[k] for k in ("architecture", "tier", "augmentation")} == {
        "architecture": "cxr_tiny",
        "tier": "quick",
        "augmentation": "light",
    }
    assert run.params["init"]["requested"] == "champion"  # automatic runs warm-start by default
    queue = selectors.retraining_queue()
    assert queue["counts_by_label"] == {"PNEUMONIA": 2, "NORMAL": 1}
    assert queue["last_trigger"]["run_id"] == run.pk and queue["last_trigger"]["reason"] == run.trigger_reason

    # While that run is queued/running, the check does not start another one.
    with django_capture_on_commit_callbacks(execute=False):
        assert services.check_retraining_queue() is None


def test_labels_used_by_a_successful_run_leave_the_queue(modelops_settings, django_capture_on_commit_callbacks):
    modelops_settings.DEEPMED_RETRAIN_LABEL_THRESHOLD = 2
    used = LabeledSampleFactory.create_batch(2)
    done = TrainingRunFactory(status=RunStatus.SUCCEEDED)
    done.samples.add(*used)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.check_retraining_queue() is None
    assert selectors.retraining_queue()["new_labels"] == 0
    LabeledSampleFactory.create_batch(2, label="NORMAL")
    with django_capture_on_commit_callbacks(execute=False):
        assert services.check_retraining_queue() is not None


def test_low_champion_agreement_triggers(
    modelops_settings, champion, queued_study, physician, django_capture_on_commit_callbacks
):
    from apps.review.models import Review

    modelops_settings.DEEPMED_RETRAIN_LABEL_THRESHOLD = 1000
    modelops_settings.DEEPMED_RETRAIN_AGREEMENT_MIN_REVIEWS = 1
    modelops_settings.DEEPMED_RETRAIN_AGREEMENT_FLOOR = 0.5
    prediction = PredictionFactory(study=queued_study, model_version=champion, label="NORMAL")
    Review.objects.create(study=queued_study, physician=physician, decision="correct", final_label="PNEUMONIA")
    with django_capture_on_commit_callbacks(execute=False):
        run = services.check_retraining_queue()
    assert run is not None and run.trigger == Trigger.LOW_AGREEMENT
    assert "0% of 1 reviews" in run.trigger_reason
    assert prediction.model_version == champion


def test_beat_schedules_the_check_on_the_training_queue(settings):
    from deepmed_web.celery import TASK_ROUTES, app

    app.finalize()
    entry = app.conf.beat_schedule["check-retraining-queue"]
    assert entry["task"] == "workers.training.check_retraining_queue"
    assert entry["schedule"] == float(settings.DEEPMED_RETRAIN_CHECK_SECONDS)
    assert TASK_ROUTES["workers.training.*"] == {"queue": "training"}
    assert {"workers.training", "workers.augmentation"} <= set(app.conf.include)  # loaded by every worker


def test_a_sample_of_a_study_flagged_for_identifying_text_never_trains(queued_study):
    """Second safeguard: even a sample not (yet) excluded stays out once its study is flagged."""
    from apps.studies.models import Study

    sample = LabeledSampleFactory()
    sample.study = queued_study
    sample.save()
    assert list(selectors.training_samples()) == [sample]
    Study.objects.filter(pk=queued_study.pk).update(identifying_text="physician")
    assert not selectors.training_samples().exists() and not selectors.new_samples().exists()
