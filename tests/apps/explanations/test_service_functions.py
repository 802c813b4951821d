"""generate_explanation: explaining → Explanation → explained, never failing the study."""

import pytest
from prometheus_client import REGISTRY

from apps.explanations import services
from apps.explanations.models import Explanation
from apps.studies.models import StudyStatus
from apps.studies.services import transition_study
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.prompt import build_prompt, prompt_hash
from ml_core.llm.testing import sample_facts
from ml_core.llm.writing import TEMPLATE_LABEL, compose_explanation


def _metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _total(name):
    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == name)


def test_language_model_explanation_is_stored_with_its_provenance(sample_facts_study, memorizing_engine):
    before = _metric("deepmed_explanations_total", engine="litgpt", outcome="passed")
    explanation = services.generate_explanation(sample_facts_study.pk)
    sample_facts_study.refresh_from_db()
    assert sample_facts_study.status == StudyStatus.EXPLAINED
    assert explanation.engine == "litgpt"
    assert explanation.text == compose_explanation(sample_facts())
    assert explanation.model_name.startswith("tiny-test-gpt@")
    assert explanation.prompt_hash == prompt_hash(build_prompt(sample_facts()))
    assert explanation.generation_ms > 0
    assert explanation.validation["outcome"] == "passed"
    assert explanation.validation["facts"]["label"] == "PNEUMONIA"
    assert explanation.technical_summary.startswith(
        f"cxr-tiny v{sample_facts_study.predictions.get().model_version_label}: PNEUMONIA"
    )
    assert _metric("deepmed_explanations_total", engine="litgpt", outcome="passed") == before + 1


def test_with_the_child_process_setting_the_warm_child_writes_the_explanation(
    sample_facts_study, memorizing_engine, settings, monkeypatch
):
    import os

    import workers
    from ml_core.llm import engine as llm_engine
    from ml_core.llm.process_engine import ProcessEngine

    def not_here(*args, **kwargs):
        raise AssertionError("generated in the web process")

    settings.DEEPMED_LLM_IN_CHILD_PROCESS = True
    settings.DEEPMED_EMBEDDED_BACKGROUND_NICE = 2
    monkeypatch.setattr(llm_engine.LitGPTEngine, "generate", not_here)  # the spawned child never sees this
    llm_engine.clear_engines()
    try:
        assert workers.warm_up(["llm"]) == ["explanation engine"]  # the child is started and loaded
        [engine] = llm_engine._ENGINES.values()
        assert isinstance(engine, ProcessEngine) and engine.pid not in (None, os.getpid())
        child = engine.pid
        assert os.getpriority(os.PRIO_PROCESS, child) >= os.getpriority(os.PRIO_PROCESS, os.getpid()) + 2

        explanation = services.generate_explanation(sample_facts_study.pk)

        assert explanation.engine == "litgpt" and explanation.validation["outcome"] == "passed"
        assert explanation.text == compose_explanation(sample_facts())
        assert explanation.model_name == engine.model_id
        assert (engine.pid, engine.starts) == (child, 1)  # the warm child, not a new one
    finally:
        llm_engine.clear_engines()


def test_rejected_model_text_falls_back_to_the_labelled_template(sample_facts_study, random_engine):
    failures = _total("deepmed_explanation_validation_failures_total")
    explanation = services.generate_explanation(sample_facts_study.pk)
    sample_facts_study.refresh_from_db()
    assert sample_facts_study.status == StudyStatus.EXPLAINED
    assert explanation.engine == "template" and explanation.text.startswith(TEMPLATE_LABEL)
    assert explanation.text.endswith(DISCLAIMER)
    assert explanation.validation["outcome"] == "template_after_failures"
    assert len(explanation.validation["attempts"]) == 2
    assert _total("deepmed_explanation_validation_failures_total") == failures + 2


def test_missing_checkpoint_never_fails_the_study(sample_facts_study, settings, tmp_path):
    settings.DEEPMED_LLM_CHECKPOINT = str(tmp_path / "nowhere")
    explanation = services.generate_explanation(sample_facts_study.pk)
    sample_facts_study.refresh_from_db()
    assert sample_facts_study.status == StudyStatus.EXPLAINED
    assert explanation.engine == "template"
    assert explanation.validation["outcome"] == "template_no_engine"
    assert "nowhere" in explanation.validation["attempts"][0]["error"]
    assert sample_facts_study.predictions.exists()


def test_disabled_language_model_uses_the_template(sample_facts_study, settings):
    settings.DEEPMED_LLM_ENABLED = False
    explanation = services.generate_explanation(sample_facts_study.pk)
    assert explanation.engine == "template"
    assert "DEEPMED_LLM_ENABLED" in explanation.validation["attempts"][0]["error"]


def test_a_rerun_is_skipped_and_never_duplicates(sample_facts_study, settings):
    settings.DEEPMED_LLM_ENABLED = False
    services.generate_explanation(sample_facts_study.pk)
    assert services.generate_explanation(sample_facts_study.pk) is None
    assert Explanation.objects.filter(study=sample_facts_study).count() == 1


def test_a_redelivered_task_resumes_a_study_left_explaining(sample_facts_study, settings):
    settings.DEEPMED_LLM_ENABLED = False
    transition_study(sample_facts_study, StudyStatus.EXPLAINING)  # the worker died here
    assert services.generate_explanation(sample_facts_study.pk) is not None
    sample_facts_study.refresh_from_db()
    assert sample_facts_study.status == StudyStatus.EXPLAINED


def test_studies_not_predicted_are_skipped(queued_study):
    assert services.generate_explanation(queued_study.pk) is None
    assert services.generate_explanation("00000000-0000-0000-0000-000000000000") is None


def test_a_study_reviewed_while_explaining_keeps_its_review_status(sample_facts_study, settings):
    settings.DEEPMED_LLM_ENABLED = False
    study = services.start_explanation(sample_facts_study.pk)
    transition_study(study, StudyStatus.REVIEWED)
    from ml_core.llm.explain import explain

    services.store_explanation(study, explain(sample_facts(), None), sample_facts())
    study.refresh_from_db()
    assert study.status == StudyStatus.REVIEWED and study.explanation.engine == "template"


def test_recording_a_prediction_enqueues_the_explanation_on_commit(
    queued_study, champion, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.studies.services import record_prediction
    from apps.studies.services import transition_study as move
    from ml_core.llm.testing import SAMPLE_PROBABILITIES
    from ml_core.serve import PredictionResult

    queued = []
    monkeypatch.setattr(services, "enqueue_explanation", queued.append)
    move(queued_study, StudyStatus.PREDICTING)
    result = PredictionResult(
        label="PNEUMONIA",
        probabilities=SAMPLE_PROBABILITIES,
        confidence=0.82,
        latency_ms=1.0,
        heatmap_png=None,
        model_name="m",
        model_version="1",
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_prediction(queued_study, model_version=champion, result=result)
    assert queued == [queued_study.pk]


def test_requeue_picks_up_studies_left_without_an_explanation(sample_facts_study, monkeypatch):
    from django.utils import timezone

    from apps.studies.models import Study

    queued = []
    monkeypatch.setattr(services, "enqueue_explanation", queued.append)
    assert services.requeue_unexplained_studies() == 0  # too recent
    Study.objects.filter(pk=sample_facts_study.pk).update(updated_at=timezone.now() - timezone.timedelta(hours=1))
    assert services.requeue_unexplained_studies() == 1
    assert queued == [sample_facts_study.pk]


def test_the_default_checkpoint_is_the_shipped_explainer(settings):
    from ml_core.llm.engine import STARTER_CHECKPOINT

    settings.DEEPMED_LLM_CHECKPOINT = ""
    assert services.explainer_checkpoint() == STARTER_CHECKPOINT
    settings.DEEPMED_LLM_CHECKPOINT = "/opt/models/phi-2"
    assert str(services.explainer_checkpoint()) == "/opt/models/phi-2"
    settings.DEEPMED_LLM_CHECKPOINT = "checkpoints/microsoft/phi-2"  # never handed to litgpt as a hub name
    assert services.explainer_checkpoint() == settings.BASE_DIR / "checkpoints" / "microsoft" / "phi-2"


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_edits_are_refused(sample_facts_study, physician, settings, text):
    settings.DEEPMED_LLM_ENABLED = False
    services.generate_explanation(sample_facts_study.pk)
    with pytest.raises(services.ExplanationError):
        services.edit_explanation(study=sample_facts_study, editor=physician, text=text)
