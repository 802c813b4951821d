"""Embedded mode: one in-process consumer per queue group, so an inference task never waits
behind a long `llm` (or `training`) task — checked by order of completion, not wall-clock."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from deepmed_web.embedded import consumer_groups, lower_thread_priority

SLOW_TASK = "workers.llm.slow_fake_task_for_tests"  # routed to `llm` by its prefix


def test_the_default_groups_give_inference_a_consumer_of_its_own():
    groups = consumer_groups()
    assert ("inference",) in groups
    assert sorted(q for g in groups for q in g) == sorted(["inference", "llm", "training", "augmentation", "default"])


@pytest.mark.parametrize(
    "groups",
    [
        [("inference",), ("llm", "default")],  # training, augmentation: nobody would consume them
        [("inference", "llm"), ("llm", "training", "augmentation", "default")],  # llm twice
        [("inference",), (), ("llm", "training", "augmentation", "default")],
    ],
)
def test_groups_must_cover_every_queue_once(groups):
    with pytest.raises(ImproperlyConfigured):
        consumer_groups(groups)


def test_a_background_thread_lowers_only_its_own_priority():
    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread priorities here")
    seen = {}

    def background():
        seen["lowered"] = lower_thread_priority(5)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen["lowered"] and seen["nice"] == min(19, before + 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # this thread untouched


@pytest.mark.django_db(transaction=True)
def test_a_long_llm_task_does_not_delay_an_inference_task(
    settings, consenting_patient, xray_png, champion, study_settled, monkeypatch
):
    if not settings.EMBEDDED_MODE:
        pytest.skip("embedded mode only")
    from apps.studies.services import create_study

    settings.DEEPMED_LLM_ENABLED = False  # the explanation the prediction queues: the quick template
    # The study's own inference task is published by the test, after the slow one.
    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    queued_study = create_study(owner=consenting_patient, data=xray_png)
    from celery.signals import task_postrun

    from apps.core import tasks
    from apps.studies.models import StudyStatus
    from deepmed_web.celery import app
    from deepmed_web.embedded import start_embedded_worker, stop_embedded_worker

    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(60)  # held until the test lets it go (or a minute: the old single consumer)
        return "slow"

    if SLOW_TASK not in app.tasks:
        app.task(name=SLOW_TASK)(slow)
    else:  # a rerun in the same process: point the registered task at this test's events
        app.tasks[SLOW_TASK].run = slow
    finished: list[str] = []

    def record(sender=None, **kwargs):
        if sender is not None and sender.name in (SLOW_TASK, tasks.INFERENCE):
            finished.append(sender.name)

    task_postrun.connect(record, weak=False)
    start_embedded_worker(periodic_tasks=False)  # after the task is registered: the consumers know it
    try:
        tasks.enqueue(SLOW_TASK)
        assert started.wait(60), "the llm consumer never took the slow task"
        tasks.enqueue(tasks.INFERENCE, str(queued_study.pk))  # enqueued after the slow one
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and tasks.INFERENCE not in finished:
            time.sleep(0.05)
        release.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(finished) < 2:
            time.sleep(0.05)
        assert finished == [tasks.INFERENCE, SLOW_TASK]
        study = study_settled(queued_study)  # the explanation it queued ran too: nothing left in flight
        assert study.predictions.exists() and study.status in (StudyStatus.EXPLAINED, StudyStatus.FAILED)
    finally:
        release.set()
        task_postrun.disconnect(record)
        stop_embedded_worker()


@pytest.mark.django_db(transaction=True)
def test_each_embedded_consumer_warms_up_its_queues_and_readiness_waits_for_it(settings, monkeypatch):
    """app.WorkController sends no worker_ready of its own (only the `celery worker` command
    does): without the embedded mode sending it, nothing was ever warmed in embedded mode."""
    import workers
    from apps.health.checks import check_warm
    from deepmed_web import readiness
    from deepmed_web.embedded import start_embedded_worker, stop_embedded_worker

    if not settings.EMBEDDED_MODE:
        pytest.skip("embedded mode only")
    settings.DEEPMED_WARM_UP_WORKERS = True
    release, warmed = threading.Event(), []
    monkeypatch.setattr(workers, "warm_up", lambda queues: (release.wait(10), warmed.append(sorted(queues))))
    start_embedded_worker(periodic_tasks=False)
    try:
        assert check_warm() == "warming up the workers of inference, llm"  # loading: not ready yet
        release.set()
        deadline = time.monotonic() + 10
        while readiness.warming_up() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert check_warm() is None
        assert sorted(warmed) == [["augmentation", "training"], ["default", "llm"], ["inference"]]
    finally:
        release.set()
        stop_embedded_worker()
