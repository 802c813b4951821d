"""The validator's decisions: agreement with the prediction, certainty, medication, form."""

import pytest

from ml_core.llm.facts import build_facts
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.validate import ValidationLimits, validate_explanation
from ml_core.llm.writing import compose_explanation

CLASSES = ("COVID-19", "NORMAL", "PNEUMONIA")


def facts(label="PNEUMONIA", p=0.7):
    others = [c for c in CLASSES if c != label]
    return build_facts(label=label, probabilities={label: p, others[0]: (1 - p) / 2, others[1]: (1 - p) / 2})


def body(text: str) -> str:
    return f"{text} Questions you could ask your doctor: Do I need more tests? {DISCLAIMER}"


CONFORMING = body(
    "The model's most likely reading is signs that can fit pneumonia, at 70% probability "
    "(moderate confidence). Pneumonia is an infection of the lung tissue."
)


def test_conforming_text_passes():
    result = validate_explanation(CONFORMING, facts())
    assert result.passed, result.failures


def test_contradictory_text_naming_another_finding_is_rejected():
    text = body("The X-ray shows COVID-19 and signs that can fit pneumonia, at 70% probability.")
    result = validate_explanation(text, facts())
    assert not result.passed
    assert "other_finding:COVID-19" in result.failures


def test_text_that_never_names_the_predicted_finding_is_rejected():
    text = body("The model found something on this chest X-ray at 70% probability. Your doctor will explain.")
    assert "missing_finding:PNEUMONIA" in validate_explanation(text, facts()).failures


def test_out_of_scope_findings_are_never_named():
    text = CONFORMING.replace("lung tissue.", "lung tissue, not tuberculosis.")
    assert "out_of_scope_finding:tuberculosis" in validate_explanation(text, facts()).failures


@pytest.mark.parametrize(
    "claim, code",
    [
        ("at 95% probability", "overstated_probability:95>70"),
        ("at 71 percent probability", "overstated_probability:71>70"),
        ("and this is definitely the case", "certainty_language:definitely"),
        ("so you have pneumonia", "asserts_disease"),
        ("with high confidence", "overstated_band:high>moderate"),
        ("which is very likely", "overstated_band:very likely>moderate"),
    ],
)
def test_overstated_certainty_is_rejected(claim, code):
    text = body(f"The model's reading is signs that can fit pneumonia {claim}.")
    assert code in validate_explanation(text, facts()).failures


def test_stated_probability_equal_to_the_calibrated_one_is_allowed():
    text = body("The model's reading is signs that can fit pneumonia, at 70% probability, moderate confidence.")
    assert validate_explanation(text, facts()).passed


@pytest.mark.parametrize(
    "advice, code",
    [
        ("Take 500 mg of amoxicillin twice a day.", "dose"),
        ("Ask for antibiotics.", "medication:antibiotics"),
        ("Paracetamol can help with the fever.", "medication:paracetamol"),
    ],
)
def test_medication_and_doses_are_rejected(advice, code):
    text = body(f"The model's reading is signs that can fit pneumonia at 70% probability. {advice}")
    assert code in validate_explanation(text, facts()).failures


def test_must_end_with_the_disclaimer():
    text = CONFORMING.replace(DISCLAIMER, "") + " Get well soon."
    assert "missing_disclaimer" in validate_explanation(text, facts()).failures


def test_length_limits():
    assert (
        "too_short"
        in validate_explanation(f"Pneumonia. {DISCLAIMER}", facts(), ValidationLimits(min_chars=300)).failures
    )
    long_text = body("Signs that can fit pneumonia. " + "The model looked at the image. " * 60)
    assert "too_long" in validate_explanation(long_text, facts()).failures


def test_prompt_markup_is_rejected():
    assert (
        "prompt_markup"
        in validate_explanation(CONFORMING.replace("Pneumonia is", "finding: PNEUMONIA is"), facts()).failures
    )


def test_normal_is_matched_as_a_word_not_inside_abnormal():
    text = body("The model's reading is signs that can fit pneumonia at 70% probability; an abnormal area was seen.")
    assert validate_explanation(text, facts()).passed
    assert "other_finding:NORMAL" in validate_explanation(text.replace("abnormal", "normal"), facts()).failures


def test_unknown_class_gets_a_generic_entry():
    f = build_facts(label="EFFUSION", probabilities={"EFFUSION": 0.8, "NORMAL": 0.2})
    text = compose_explanation(f)
    assert "effusion" in text.lower()
    assert validate_explanation(text, f).passed  # its own name is not "out of scope"


def test_stated_facts_must_be_the_given_ones():
    grounded = build_facts(
        label="PNEUMONIA",
        probabilities={"PNEUMONIA": 0.7, "NORMAL": 0.2, "COVID-19": 0.1},
        heatmap_regions={"dominant_region": "right lower zone"},
        age=54,
        symptoms_text="cough",
    )
    ok = body(
        "Signs that can fit pneumonia, at 70% probability. It is mostly in the lower part of the right side "
        "of your chest. You mentioned cough. Your age (54) matters."
    )
    assert validate_explanation(ok, grounded).passed, validate_explanation(ok, grounded).failures
    wrong = (
        ok.replace("lower part of the right", "upper part of the left")
        .replace("cough.", "cough and fever.")
        .replace("(54)", "(45)")
        .replace("70%", "60%")
    )
    failures = validate_explanation(wrong, grounded).failures
    for code in (
        "wrong_region:left upper zone",
        "unsupported_symptom:fever",
        "unsupported_number:45",
        "wrong_probability:60!=70",
    ):
        assert code in failures
