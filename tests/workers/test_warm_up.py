"""Workers load what their queues need when they start (workers/__init__.py), not at the first study."""

import threading
from types import SimpleNamespace

import pytest

import workers
from apps.modelops.services import serving
from deepmed_web import readiness
from ml_core.llm import engine as llm_engine


@pytest.fixture
def cold_caches():
    serving._predictors.clear()
    llm_engine.clear_engines()
    yield
    serving._predictors.clear()
    llm_engine.clear_engines()


def test_inference_and_llm_queues_warm_the_champion_and_the_explanation_engine(
    champion, settings, tiny_llm_checkpoint, cold_caches
):
    settings.DEEPMED_LLM_CHECKPOINT = str(tiny_llm_checkpoint)

    assert workers.warm_up(["llm", "inference", "default"]) == ["predictors", "explanation engine"]
    assert [key[0] for key in serving._predictors] == [champion.pk]
    assert len(llm_engine._ENGINES) == 1


def test_nothing_to_warm_is_not_an_error(db, settings, cold_caches):
    settings.DEEPMED_LLM_ENABLED = False
    assert workers.warm_up(["inference", "llm", "training"]) == []  # no champion, no language model
    assert not serving._predictors and not llm_engine._ENGINES


def test_a_failing_warm_up_is_logged_and_the_worker_goes_on(champion, monkeypatch, caplog, cold_caches):
    def broken():
        raise OSError("package unreadable")

    monkeypatch.setattr(serving, "warm_up_predictors", broken)
    assert workers.warm_up(["inference"]) == []
    assert "warming up the predictors failed" in caplog.text


@pytest.mark.parametrize("enabled", [True, False])
def test_the_ready_signal_warms_the_consumers_queues_in_the_background(settings, monkeypatch, enabled):
    settings.DEEPMED_WARM_UP_WORKERS = enabled
    called, done = [], threading.Event()
    monkeypatch.setattr(workers, "warm_up", lambda queues: (called.append(sorted(queues)), done.set()))
    queues = [SimpleNamespace(name="llm"), SimpleNamespace(name="default")]

    workers._warm_up_when_ready(sender=SimpleNamespace(task_consumer=SimpleNamespace(queues=queues)))

    assert done.wait(5 if enabled else 0.5) is enabled
    assert called == ([["default", "llm"]] if enabled else [])


@pytest.fixture
def no_pending_warm_ups():
    readiness.warm_up_done(readiness.WARMED_QUEUES)
    yield
    readiness.warm_up_done(readiness.WARMED_QUEUES)


def test_readiness_waits_until_the_consumers_have_warmed_up(settings, monkeypatch, no_pending_warm_ups):
    from apps.health.checks import check_warm

    settings.DEEPMED_WARM_UP_WORKERS = True
    release, finished = threading.Event(), threading.Event()

    def slow_warm_up(queues):
        release.wait(5)
        finished.set()

    monkeypatch.setattr(workers, "warm_up", slow_warm_up)
    readiness.expect_warm_up(["inference", "llm", "training"])  # as embedded mode does before its consumers start
    assert readiness.warming_up() == ["inference", "llm"]  # training has nothing to load
    assert check_warm() == "warming up the workers of inference, llm"

    queues = [SimpleNamespace(name="llm"), SimpleNamespace(name="default")]
    workers._warm_up_when_ready(sender=SimpleNamespace(task_consumer=SimpleNamespace(queues=queues)))
    release.set()
    assert finished.wait(5)
    for _ in range(100):  # the thread clears its queues right after warm_up returns
        if readiness.warming_up() == ["inference"]:
            break
        threading.Event().wait(0.02)
    assert readiness.warming_up() == ["inference"]  # the inference consumer has not reported ready yet
    assert check_warm() == "warming up the workers of inference"


def test_a_warm_up_switched_off_after_start_does_not_hold_readiness(settings, no_pending_warm_ups):
    from apps.health.checks import check_warm

    readiness.expect_warm_up(["inference"])
    settings.DEEPMED_WARM_UP_WORKERS = False
    inference = [SimpleNamespace(name="inference")]
    workers._warm_up_when_ready(sender=SimpleNamespace(task_consumer=SimpleNamespace(queues=inference)))
    assert readiness.warming_up() == [] and check_warm() is None
