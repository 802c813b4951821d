"""The worklist's priority, defined once (the page, the API and the tests use these).

A study awaiting review is ordered by:
0. the severity flag (`is_suspected_severe`): studies the model is fairly sure show a severe
   finding come first;
1. severity of the model's suspected finding (`SEVERITY`, highest first): a suspected
   COVID-19 or pneumonia is looked at before a "normal" result;
2. uncertainty of the model, highest first: the normalised entropy of its calibrated
   probabilities (0 = certain, 1 = uniform), in steps of `UNCERTAINTY_STEP` so that results
   about as unsure as each other count as equal;
3. age: the oldest study first.
"""

from __future__ import annotations

import math
from datetime import datetime

from django.conf import settings

# How urgent a suspected finding is. A class not listed counts as UNKNOWN_SEVERITY (a finding
# the table does not know is treated as suspicious rather than normal).
SEVERITY: dict[str, int] = {
    "COVID-19": 3,
    "PNEUMONIA": 3,
    "VIRAL PNEUMONIA": 3,
    "LUNG_OPACITY": 2,
    "NORMAL": 0,
}
UNKNOWN_SEVERITY = 2
SEVERE_AT = 3  # classes this severe or more count as a severe finding (see `severe_probability`)
UNCERTAINTY_STEP = 0.1

# Confidence bands (top-class probability): low below DEEPMED_LOW_CONFIDENCE, high from HIGH_CONFIDENCE.
HIGH_CONFIDENCE = 0.85
CONFIDENCE_BANDS = ("low", "medium", "high")


def severity(label: str) -> int:
    return SEVERITY.get(label.upper(), UNKNOWN_SEVERITY)


def severe_probability(probabilities: dict[str, float]) -> float:
    """The model's calibrated probability that the finding is severe: the sum over its severe
    classes (severity SEVERE_AT or more)."""
    return min(1.0, sum(p for label, p in probabilities.items() if severity(label) >= SEVERE_AT))


def is_suspected_severe(probabilities: dict[str, float]) -> bool:
    """The worklist's severity flag: the probability of a severe finding reaches
    DEEPMED_SEVERE_THRESHOLD. A top label of PNEUMONIA at 0.4 is not flagged; this marks the
    studies the model is fairly sure are severe, a minority, not every non-normal label."""
    return severe_probability(probabilities) >= settings.DEEPMED_SEVERE_THRESHOLD


def uncertainty(probabilities: dict[str, float]) -> float:
    """Normalised Shannon entropy of the probabilities, in [0, 1]."""
    values = [p for p in probabilities.values() if p > 0]
    if len(probabilities) < 2:
        return 0.0
    entropy = -sum(p * math.log(p) for p in values)
    return min(1.0, max(0.0, entropy / math.log(len(probabilities))))


def confidence_band(confidence: float) -> str:
    if confidence < settings.DEEPMED_LOW_CONFIDENCE:
        return "low"
    return "high" if confidence >= HIGH_CONFIDENCE else "medium"


def confidence_range(band: str) -> tuple[float, float]:
    """[low, high) of top-class probability for a band (for filtering in the database)."""
    return {
        "low": (0.0, settings.DEEPMED_LOW_CONFIDENCE),
        "medium": (settings.DEEPMED_LOW_CONFIDENCE, HIGH_CONFIDENCE),
        "high": (HIGH_CONFIDENCE, math.inf),
    }[band]


def priority_key(label: str, probabilities: dict[str, float], created_at: datetime) -> tuple:
    """Sort key: smaller sorts first."""
    steps = round(uncertainty(probabilities) / UNCERTAINTY_STEP)
    return (not is_suspected_severe(probabilities), -severity(label), -steps, created_at)
