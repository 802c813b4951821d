"""The structured facts an explanation is built from — and nothing else.

Only the prediction (label, calibrated probabilities, confidence band), a coarse heat-map
summary and what the patient typed about age/symptoms (reduced to known symptom words)
reach the prompt. No names, ids, dates or free text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ml_core.llm.knowledge import SYMPTOMS

BANDS = ("low", "moderate", "high")
# Calibrated probability of the top class -> band. The top class of K classes is >= 1/K.
BAND_FLOORS = {"high": 0.85, "moderate": 0.6}
FOCAL_MAX_FRACTION = 0.2  # heat-map: share of pixels >= 0.5 activation below which we call it focal


def confidence_band(probability: float) -> str:
    if probability >= BAND_FLOORS["high"]:
        return "high"
    if probability >= BAND_FLOORS["moderate"]:
        return "moderate"
    return "low"


def percent(probability: float) -> int:
    """How a probability is written everywhere (prompt, template, validator): whole percent, rounded down
    so the text can never state more certainty than the model has."""
    return max(0, min(100, int(probability * 100 + 1e-9)))


@dataclass(frozen=True)
class ExplanationFacts:
    label: str
    probabilities: dict[str, float]  # calibrated, per class
    band: str
    region: str | None = None  # dominant heat-map zone, e.g. "right lower zone" (patient's side)
    pattern: str | None = None  # "focal" | "widespread"
    age: int | None = None
    symptoms: tuple[str, ...] = field(default_factory=tuple)

    @property
    def probability(self) -> float:
        return self.probabilities[self.label]

    @property
    def classes(self) -> list[str]:
        return list(self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["symptoms"] = list(self.symptoms)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExplanationFacts:
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in data.items() if k in known}
        data["symptoms"] = tuple(data.get("symptoms") or ())
        return cls(**data)


def extract_symptoms(text: str) -> tuple[str, ...]:
    """Canonical symptom words found in patient text; everything else is dropped."""
    lowered = (text or "").lower()
    return tuple(name for name, cues in SYMPTOMS.items() if any(cue in lowered for cue in cues))


def build_facts(
    *,
    label: str,
    probabilities: dict[str, float],
    heatmap_regions: dict[str, Any] | None = None,
    age: int | None = None,
    symptoms_text: str = "",
) -> ExplanationFacts:
    """Facts from a stored prediction. The label must be the most likely class."""
    probs = {str(k): float(v) for k, v in probabilities.items()}
    if label not in probs or probs[label] < max(probs.values()):
        raise ValueError(f"label {label!r} is not the most likely class of {probs}")
    regions = heatmap_regions or {}
    region = regions.get("dominant_region") or None
    fraction = regions.get("high_activation_fraction")
    pattern = None if fraction is None else ("focal" if float(fraction) <= FOCAL_MAX_FRACTION else "widespread")
    if age is not None and not 0 <= int(age) <= 130:
        age = None
    return ExplanationFacts(
        label=label,
        probabilities=probs,
        band=confidence_band(probs[label]),
        region=region,
        pattern=pattern,
        age=None if age is None else int(age),
        symptoms=extract_symptoms(symptoms_text),
    )
