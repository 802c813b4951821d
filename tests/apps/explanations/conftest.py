"""A study with a stored champion prediction whose facts are ml_core.llm.testing.sample_facts()."""

import pytest


@pytest.fixture
def predicted_study(queued_study, champion):
    from apps.studies.models import StudyStatus
    from apps.studies.services import record_prediction, transition_study
    from ml_core.llm.testing import SAMPLE_PROBABILITIES
    from ml_core.serve import PredictionResult

    transition_study(queued_study, StudyStatus.PREDICTING)
    result = PredictionResult(
        label="PNEUMONIA",
        probabilities=dict(SAMPLE_PROBABILITIES),
        confidence=SAMPLE_PROBABILITIES["PNEUMONIA"],
        latency_ms=5.0,
        heatmap_png=None,
        heatmap_regions={},
        model_name="cxr-tiny",
        model_version=champion.version,
    )
    record_prediction(queued_study, model_version=champion, result=result)
    queued_study.refresh_from_db()
    assert queued_study.status == StudyStatus.PREDICTED
    return queued_study


@pytest.fixture
def memorizing_engine(settings, memorizing_llm_checkpoint):
    settings.DEEPMED_LLM_CHECKPOINT = str(memorizing_llm_checkpoint)
    settings.DEEPMED_LLM_TEMPERATURE = 0.1
    settings.DEEPMED_LLM_DEVICE = "cpu"
    return memorizing_llm_checkpoint


@pytest.fixture
def random_engine(settings, tiny_llm_checkpoint):
    settings.DEEPMED_LLM_CHECKPOINT = str(tiny_llm_checkpoint)
    settings.DEEPMED_LLM_MAX_NEW_TOKENS = 40
    settings.DEEPMED_LLM_DEVICE = "cpu"
    return tiny_llm_checkpoint


@pytest.fixture
def explained_study(predicted_study, settings):
    """Explained with the template (language model off): fast, deterministic."""
    from apps.explanations import services

    settings.DEEPMED_LLM_ENABLED = False
    services.generate_explanation(predicted_study.pk)
    return predicted_study
