"""Facts and prompt: only structured facts reach the model."""

import pytest

from ml_core.llm.facts import ExplanationFacts, build_facts, confidence_band, extract_symptoms, percent
from ml_core.llm.prompt import build_prompt, clean_completion, prompt_hash

PROBS = {"COVID-19": 0.1, "NORMAL": 0.2, "PNEUMONIA": 0.7}


def test_label_must_be_the_most_likely_class():
    with pytest.raises(ValueError):
        build_facts(label="NORMAL", probabilities=PROBS)


@pytest.mark.parametrize(
    "p, band", [(0.34, "low"), (0.59, "low"), (0.6, "moderate"), (0.849, "moderate"), (0.85, "high")]
)
def test_confidence_bands(p, band):
    assert confidence_band(p) == band


def test_percent_rounds_down_so_text_never_overstates():
    assert percent(0.829) == 82
    assert percent(0.999) == 99
    assert percent(1.0) == 100


def test_patient_text_is_reduced_to_known_symptoms():
    text = "I'm Alice Smith, MRN 12345, I have a cough, a fever and I'm short of breath"
    assert extract_symptoms(text) == ("cough", "fever", "shortness of breath")
    prompt = build_prompt(build_facts(label="PNEUMONIA", probabilities=PROBS, symptoms_text=text, age=41))
    assert "Alice" not in prompt and "12345" not in prompt and "MRN" not in prompt
    assert "symptoms: cough, fever, shortness of breath" in prompt
    assert "age: 41" in prompt


def test_prompt_carries_label_probabilities_band_and_region():
    facts = build_facts(
        label="PNEUMONIA",
        probabilities=PROBS,
        heatmap_regions={"dominant_region": "right lower zone", "high_activation_fraction": 0.05},
    )
    prompt = build_prompt(facts)
    for line in (
        "finding: PNEUMONIA",
        "probability: 70%",
        "confidence: moderate",
        "others: NORMAL 20%, COVID-19 10%",
        "region: right lower zone",
        "pattern: focal",
        "age: not given",
    ):
        assert line in prompt


def test_facts_round_trip_and_prompt_hash():
    facts = build_facts(label="PNEUMONIA", probabilities=PROBS, symptoms_text="cough")
    assert ExplanationFacts.from_dict(facts.to_dict()) == facts
    assert prompt_hash(build_prompt(facts)) == prompt_hash(build_prompt(ExplanationFacts.from_dict(facts.to_dict())))
    other = build_facts(label="PNEUMONIA", probabilities={**PROBS, "PNEUMONIA": 0.71, "NORMAL": 0.19})
    assert prompt_hash(build_prompt(facts)) != prompt_hash(build_prompt(other))


def test_out_of_range_age_is_dropped():
    assert build_facts(label="PNEUMONIA", probabilities=PROBS, age=400).age is None


def test_clean_completion_cuts_at_the_end_marker():
    assert clean_completion("Some  text.\n</explanation>\n<facts>\nfinding: X") == "Some text."
