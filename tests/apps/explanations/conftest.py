"""Explanation fixtures: a predicted study whose facts are ml_core.llm.testing.sample_facts(),
explained by the template, and the two tiny language models. (Not the root conftest's
predicted_study/explained_study: those carry other probabilities and a fixed text.)"""

import pytest

from tests.factories import StudyFactory


@pytest.fixture
def sample_facts_study(consenting_patient, champion):
    """Predicted by the champion with SAMPLE_PROBABILITIES and no heat-map: its facts are
    ml_core.llm.testing.sample_facts()."""
    from ml_core.llm.testing import SAMPLE_PROBABILITIES

    return StudyFactory(
        predicted=True,
        owner=consenting_patient,
        model_version=champion,
        model_name="cxr-tiny",
        probabilities=SAMPLE_PROBABILITIES,
    )


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
def template_explained_study(sample_facts_study, settings):
    """sample_facts_study explained by the real service with the template (language model
    off): fast, deterministic."""
    from apps.explanations import services

    settings.DEEPMED_LLM_ENABLED = False
    services.generate_explanation(sample_facts_study.pk)
    return sample_facts_study
