"""A training run whose computations run in child processes (DEEPMED_TRAINING_IN_CHILD_PROCESS,
embedded mode's default): the same run as tests/apps/modelops/test_training_run.py, with its
progress, cancellation and a child's death crossing the process boundary."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re

import pytest

from apps.modelops import services
from apps.modelops.models import Alias, RunStatus, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TINY = {"epochs": 2, "image_size": 64, "batch_size": 8}


@pytest.fixture
def in_child(modelops_settings):
    modelops_settings.DEEPMED_TRAINING_IN_CHILD_PROCESS = True
    modelops_settings.DEEPMED_TRAINING_THREADS = 1
    return modelops_settings


def _start(admin_user, django_capture_on_commit_callbacks) -> TrainingRun:
    with django_capture_on_commit_callbacks(execute=False):
        return services.start_training_run(
            architecture="cxr_tiny", tier="quick", augmentation="light", actor=admin_user, overrides=TINY
        )


def _child_pids(caplog) -> dict[str, int]:
    found = {}
    for record in caplog.records:
        match = re.match(r"(\S+) runs in child process (\d+)", record.getMessage())
        if record.name == "ml_core.child_process" and match:
            found[match.group(1).rsplit(".", 1)[-1]] = int(match.group(2))
    return found


def test_training_packaging_and_evaluation_run_in_children_with_live_progress(
    in_child, admin_user, champion, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.INFO, logger="ml_core.child_process")
    run = _start(admin_user, django_capture_on_commit_callbacks)

    done = services.execute_training_run(run.pk)

    assert done.status == RunStatus.SUCCEEDED, done.error + done.logs
    children = _child_pids(caplog)
    assert set(children) == {"train", "build_package", "evaluate_package"}
    assert os.getpid() not in children.values()
    done.refresh_from_db()
    assert [h["epoch"] for h in done.progress["history"]] == [1, 2]  # the child's progress, stored here
    assert done.result_version.alias == Alias.CHALLENGER
    assert done.params["init"]["started_kind"]  # the child's TrainResult came back whole


def test_a_run_cancelled_before_it_began_stops_in_the_child(in_child, admin_user, django_capture_on_commit_callbacks):
    run = _start(admin_user, django_capture_on_commit_callbacks)
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    assert services.execute_training_run(run.pk).status == RunStatus.CANCELLED


def test_a_training_child_that_dies_fails_the_run_and_the_worker_goes_on(
    in_child, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    import apps.modelops.services.training as training

    real = training._progress_reporter

    def kill_the_child_at_the_first_step(run):
        report = real(run)

        def reporting(update):
            report(update)
            for child in multiprocessing.active_children():
                child.kill()

        return reporting

    monkeypatch.setattr(training, "_progress_reporter", kill_the_child_at_the_first_step)
    run = _start(admin_user, django_capture_on_commit_callbacks)

    failed = services.execute_training_run(run.pk)

    assert failed.status == RunStatus.FAILED
    assert failed.error.startswith("ChildDied: ") and "exit code -9" in failed.error
    assert failed.finished_at is not None
