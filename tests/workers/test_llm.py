"""The llm task, called as the worker calls it (the embedded worker thread is in test_llm_embedded.py)."""

from apps.explanations.models import Explanation
from apps.studies.models import StudyStatus
from workers.llm import generate_explanation


def _predicted(queued_study, champion):
    from workers.inference import run_inference

    assert run_inference(str(queued_study.pk)) == "predicted"
    return queued_study


def test_task_explains_a_predicted_study_and_a_rerun_is_skipped(queued_study, champion, settings, tiny_llm_checkpoint):
    settings.DEEPMED_LLM_CHECKPOINT = str(tiny_llm_checkpoint)
    settings.DEEPMED_LLM_MAX_NEW_TOKENS = 40
    study = _predicted(queued_study, champion)
    assert generate_explanation(str(study.pk)) == "template"  # a random model never passes the validator
    study.refresh_from_db()
    assert study.status == StudyStatus.EXPLAINED
    explanation = study.explanation
    assert explanation.model_name.startswith("tiny-test-gpt@")
    assert explanation.validation["facts"]["label"] == study.predictions.get().label
    # server-side timing: prediction stored <= the worker took the study <= the explanation stored
    assert study.predictions.get().finished_at <= explanation.started_at <= explanation.created_at
    assert generate_explanation(str(study.pk)) == "skipped"
    assert Explanation.objects.filter(study=study).count() == 1


def test_task_is_routed_to_the_llm_queue_and_acks_late():
    from deepmed_web.celery import app

    assert app.amqp.router.route({}, generate_explanation.name)["queue"].name == "llm"
    assert generate_explanation.acks_late is True
    assert "workers.llm" in app.conf.include
