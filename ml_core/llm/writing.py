"""Explanation text composed from facts: the deterministic template and the corpus share it.

`compose_explanation` picks one phrasing per slot through `choose`; the template always
takes the first phrasing, the corpus writer picks at random. Every text it writes passes
the validator (tests check all classes and bands).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ml_core.llm.facts import ExplanationFacts, percent
from ml_core.llm.knowledge import DISCLAIMER, finding_info

TEMPLATE_LABEL = "Standard explanation (written from a fixed template, not by the language model):"

Chooser = Callable[[Sequence[str]], str]

OPENINGS = (
    "The computer model's most likely reading of this X-ray is {display}, with a calibrated probability of {pct}% ({band} confidence).",
    "The automated model rates {display} as the most likely reading, at {pct}% probability, which is {band} confidence.",
    "Based on this image alone, the model's best estimate is {display} ({pct}% probability, {band} confidence).",
    "The model's top reading for this image is {display}, with a probability of {pct}%; its confidence is {band}.",
)
BAND_NOTES = {
    "low": (
        "This is a low-confidence result, so it should be read with extra caution.",
        "Because the confidence is low, this result may easily be wrong.",
    ),
    "moderate": (
        "The confidence is moderate, so the result could still be wrong.",
        "A moderate confidence means the model could be mistaken.",
    ),
    "high": (
        "Even with high confidence, the model can be wrong.",
        "A high-confidence result from a model can still be mistaken.",
    ),
}
PATTERN_NOTES = {
    "focal": ("The highlighted area is small and focused.", "The model's attention is on one small area."),
    "widespread": (
        "The highlighted area is spread over a larger part of the chest.",
        "The model's attention is spread over a wide area.",
    ),
}
REGION_NOTES = (
    "It is mostly in the {place}.",
    "Most of it lies in the {place}.",
)
SYMPTOM_NOTES = (
    "You mentioned {symptoms}; your doctor will weigh these together with the X-ray.",
    "Your doctor will look at the X-ray together with the {symptoms} you reported.",
)
AGE_NOTES = (
    "Your age ({age}) is also part of what your doctor will consider.",
    "Your doctor will also take your age ({age}) into account.",
)
QUESTION_INTROS = ("Questions you could ask your doctor:", "You may want to ask your doctor:")
SAFETY_NOTES = (
    "Please do not start or change any treatment because of this preview.",
    "Please do not start, stop or change any treatment based on this preview alone.",
)


def first(options: Sequence[str]) -> str:
    return options[0]


def random_chooser(rng: random.Random) -> Chooser:
    return lambda options: options[rng.randrange(len(options))]


def place_name(region: str) -> str:
    """'right lower zone' -> 'lower part of the right side of your chest' (the patient's side)."""
    parts = region.replace(" zone", "").split()
    if len(parts) == 2:
        side, level = parts
        return f"{level} part of the {side} side of your chest"
    return region


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def compose_explanation(facts: ExplanationFacts, choose: Chooser = first) -> str:
    info = finding_info(facts.label)
    sentences = [
        choose(OPENINGS).format(display=info.display, pct=percent(facts.probability), band=facts.band),
        choose(BAND_NOTES[facts.band]),
        choose(info.meanings),
    ]
    if facts.region:
        sentences.append(info.region_note)
        sentences.append(choose(REGION_NOTES).format(place=place_name(facts.region)))
    if facts.pattern in PATTERN_NOTES:
        sentences.append(choose(PATTERN_NOTES[facts.pattern]))
    if facts.symptoms:
        sentences.append(choose(SYMPTOM_NOTES).format(symptoms=_join(list(facts.symptoms))))
    if facts.age is not None:
        sentences.append(choose(AGE_NOTES).format(age=facts.age))
    questions = list(info.questions)
    q1 = choose(questions)
    q2 = choose([q for q in questions if q != q1])
    sentences += [choose(QUESTION_INTROS), q1, q2, choose(SAFETY_NOTES), DISCLAIMER]
    return " ".join(sentences)


def template_explanation(facts: ExplanationFacts) -> str:
    """The deterministic, clearly labelled fallback used when generated text fails validation."""
    return f"{TEMPLATE_LABEL} {compose_explanation(facts, first)}"


def technical_summary(facts: ExplanationFacts, *, model: str = "") -> str:
    """A short, deterministic summary for physicians (always built from facts, never generated)."""
    others = ", ".join(
        f"{name} {p:.3f}"
        for name, p in sorted(facts.probabilities.items(), key=lambda kv: -kv[1])
        if name != facts.label
    )
    parts = [
        f"{model + ': ' if model else ''}{facts.label} p={facts.probability:.3f} (calibrated; {facts.band} band)"
        + (f"; others: {others}" if others else "")
        + ".",
    ]
    if facts.region:
        parts.append(
            f"CAM dominant region: {facts.region} (radiological convention)"
            + (f", {facts.pattern}" if facts.pattern else "")
            + "."
        )
    reported = []
    if facts.age is not None:
        reported.append(f"age {facts.age}")
    if facts.symptoms:
        reported.append("symptoms: " + ", ".join(facts.symptoms))
    parts.append("Patient-reported: " + ("; ".join(reported) if reported else "nothing") + ".")
    return " ".join(parts)
