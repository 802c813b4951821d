"""Template and corpus text: every phrasing they can produce passes the validator."""

import random

import pytest

from ml_core.llm.corpus import corpus_documents, random_facts, read_corpus, write_corpus
from ml_core.llm.facts import build_facts
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.prompt import ANSWER_CLOSE, ANSWER_OPEN
from ml_core.llm.validate import validate_explanation
from ml_core.llm.writing import (
    TEMPLATE_LABEL,
    compose_explanation,
    random_chooser,
    technical_summary,
    template_explanation,
)

CLASSES = ("COVID-19", "NORMAL", "PNEUMONIA")


@pytest.mark.parametrize("label", CLASSES + ("ATELECTASIS",))
@pytest.mark.parametrize("p", [0.4, 0.7, 0.9])
def test_template_is_labelled_valid_and_deterministic(label, p):
    classes = CLASSES if label in CLASSES else (label, "NORMAL", "PNEUMONIA")
    others = [c for c in classes if c != label]
    facts = build_facts(
        label=label,
        probabilities={label: p, **{c: (1 - p) / len(others) for c in others}},
        heatmap_regions={"dominant_region": "left upper zone", "high_activation_fraction": 0.4},
        age=70,
        symptoms_text="fever and cough",
    )
    text = template_explanation(facts)
    assert text.startswith(TEMPLATE_LABEL) and text.endswith(DISCLAIMER)
    assert validate_explanation(text, facts).passed, validate_explanation(text, facts).failures
    assert text == template_explanation(facts)


def test_random_phrasings_all_pass():
    rng = random.Random(7)
    for _ in range(200):
        label = rng.choice(CLASSES)
        facts = random_facts(label, CLASSES, rng)
        assert facts.label == label
        text = compose_explanation(facts, random_chooser(rng))
        assert validate_explanation(text, facts).passed, (text, validate_explanation(text, facts).failures)


def test_corpus_has_variation_and_round_trips(tmp_path):
    docs = corpus_documents(CLASSES, per_class=20, seed=1)
    assert len(docs) == 60
    assert all(ANSWER_OPEN in d and d.endswith(ANSWER_CLOSE) for d in docs)
    explanations = {d.split(ANSWER_OPEN)[1] for d in docs}
    assert len(explanations) == 60  # no two alike
    assert corpus_documents(CLASSES, per_class=20, seed=1) == docs
    assert read_corpus(write_corpus(tmp_path / "c.jsonl", docs)) == docs


def test_technical_summary_lists_the_facts():
    facts = build_facts(
        label="PNEUMONIA",
        probabilities={"PNEUMONIA": 0.7, "NORMAL": 0.3},
        heatmap_regions={"dominant_region": "right lower zone", "high_activation_fraction": 0.1},
        age=50,
    )
    summary = technical_summary(facts, model="cxr v3")
    assert summary.startswith("cxr v3: PNEUMONIA p=0.700")
    assert "NORMAL 0.300" in summary and "right lower zone" in summary and "age 50" in summary
