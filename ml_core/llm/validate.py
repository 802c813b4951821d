"""The output validator: an explanation is shown only if it agrees with the prediction.

Rules (each failure has a stable code, recorded with the explanation):
- finding: the predicted finding is named; no other class and no out-of-scope finding is named
  (stricter than "not named as present": a small model's negations are not trusted);
- certainty: no percentage above the calibrated probability, no certainty wording, no confidence
  band stronger than the facts' band, never "you have ...";
- grounding: any probability, heat-map zone, age or symptom the text states is the one in the facts;
- medication: no medicine names, dose units or prescribing words;
- form: within length limits, no prompt markup, ends with the disclaimer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ml_core.llm.facts import BANDS, ExplanationFacts, percent
from ml_core.llm.knowledge import DISCLAIMER, OUT_OF_SCOPE_TERMS, SYMPTOMS, finding_info, term_pattern
from ml_core.llm.prompt import ANSWER_OPEN, FACTS_OPEN
from ml_core.llm.writing import place_name
from ml_core.serve import ZONES


@dataclass(frozen=True)
class ValidationLimits:
    min_chars: int = 120
    max_chars: int = 1400


@dataclass
class ValidationResult:
    passed: bool
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": list(self.failures)}


_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*(?:%|per\s?cent\b)", re.IGNORECASE)
_CERTAINTY = re.compile(
    r"\b(certain|certainly|certainty|definite|definitely|definitive|confirm(?:s|ed)?|proves?|proven|"
    r"guarantee[sd]?|undoubtedly|no doubt|without doubt|almost sure|sure)\b",
    re.IGNORECASE,
)
_YOU_HAVE = re.compile(
    r"\byou\s+(?:definitely\s+|clearly\s+|really\s+)?(?:have|are suffering|are infected|suffer)\b", re.IGNORECASE
)
_BAND_CLAIM = re.compile(
    r"\b(low|moderate|medium|high|very high)\s+(?:confidence|probability|likelihood)\b", re.IGNORECASE
)
_STRONG_WORDS = re.compile(
    r"\b(very likely|highly likely|most certainly|strongly suggests?|clear signs?)\b", re.IGNORECASE
)
_DOSE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:mg|mcg|µg|ug|g|ml|iu|units?|tablets?|pills?|capsules?|puffs?)\b", re.IGNORECASE
)
_MEDICATION = re.compile(
    r"\b(medication|medications|medicine|medicines|drug|drugs|dose|doses|dosage|prescri\w*|tablet|tablets|pill|pills|"
    r"antibiotics?|antivirals?|steroids?|corticosteroids?|inhalers?|paracetamol|acetaminophen|ibuprofen|aspirin|"
    r"amoxicillin|azithromycin|doxycycline|levofloxacin|ceftriaxone|remdesivir|paxlovid|nirmatrelvir|molnupiravir|"
    r"dexamethasone|prednisone|prednisolone|ivermectin|hydroxychloroquine|oseltamivir|mg)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?!\s*(?:%|per\s?cent\b))(?![\w.]*\d)")
_BAND_RANK = {"low": 0, "moderate": 1, "medium": 1, "high": 2, "very high": 3}


def _normalise(text: str) -> str:
    return " ".join(text.split())


def validate_explanation(
    text: str, facts: ExplanationFacts, limits: ValidationLimits | None = None
) -> ValidationResult:
    limits = limits or ValidationLimits()
    text = _normalise(text)
    failures: list[str] = []

    # --- form
    if len(text) < limits.min_chars:
        failures.append("too_short")
    if len(text) > limits.max_chars:
        failures.append("too_long")
    if not text.endswith(DISCLAIMER):
        failures.append("missing_disclaimer")
    if FACTS_OPEN in text or ANSWER_OPEN in text or "finding:" in text:
        failures.append("prompt_markup")
    body = text[: -len(DISCLAIMER)] if text.endswith(DISCLAIMER) else text

    # --- the finding
    predicted = finding_info(facts.label)
    if not any(term_pattern(t).search(body) for t in predicted.terms):
        failures.append(f"missing_finding:{facts.label}")
    for other in facts.classes:
        if other != facts.label and any(term_pattern(t).search(body) for t in finding_info(other).terms):
            failures.append(f"other_finding:{other}")
    own_terms = " ".join(predicted.terms)  # a model class may itself be an "out-of-scope" word
    for term in OUT_OF_SCOPE_TERMS:
        if term_pattern(term).search(body) and not term_pattern(term).search(own_terms):
            failures.append(f"out_of_scope_finding:{term}")

    # --- certainty
    ceiling = percent(facts.probability)
    for match in _PERCENT.finditer(body):
        if float(match.group(1)) > ceiling:
            failures.append(f"overstated_probability:{match.group(1)}>{ceiling}")
        elif float(match.group(1)) != ceiling:
            failures.append(f"wrong_probability:{match.group(1)}!={ceiling}")
    for match in _CERTAINTY.finditer(body):
        failures.append(f"certainty_language:{match.group(1).lower()}")
    if _YOU_HAVE.search(body):
        failures.append("asserts_disease")
    allowed_rank = BANDS.index(facts.band)
    for match in _BAND_CLAIM.finditer(body):
        if _BAND_RANK[match.group(1).lower()] > allowed_rank:
            failures.append(f"overstated_band:{match.group(1).lower()}>{facts.band}")
    if facts.band != "high":
        for match in _STRONG_WORDS.finditer(body):
            failures.append(f"overstated_band:{match.group(1).lower()}>{facts.band}")

    # --- grounding: nothing stated that the facts do not say
    failures += _grounding_failures(body, facts)

    # --- medication
    if _DOSE.search(body):
        failures.append("dose")
    for match in _MEDICATION.finditer(body):
        failures.append(f"medication:{match.group(1).lower()}")

    return ValidationResult(passed=not failures, failures=list(dict.fromkeys(failures)))


def _grounding_failures(body: str, facts: ExplanationFacts) -> list[str]:
    failures = []
    for zone in ZONES:
        if zone != facts.region and (term_pattern(zone).search(body) or term_pattern(place_name(zone)).search(body)):
            failures.append(f"wrong_region:{zone}")
    for name in SYMPTOMS:
        if name not in facts.symptoms and term_pattern(name).search(body):
            failures.append(f"unsupported_symptom:{name}")
    without_names = body
    names = {t for label in facts.classes for t in (label, *finding_info(label).terms)}
    for term in sorted(names, key=len, reverse=True):  # "COVID-19" is a name, not a number
        without_names = term_pattern(term).sub(" ", without_names)
    for match in _NUMBER.finditer(without_names):
        if facts.age is None or float(match.group(1)) != facts.age:
            failures.append(f"unsupported_number:{match.group(1)}")
    return failures
