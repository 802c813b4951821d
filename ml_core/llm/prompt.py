"""Prompt building: structured facts in, one fixed text layout out.

The same layout is used to write the training corpus, so the project's own model sees
exactly what it was trained on; instruction-tuned models (operator checkpoints) also get
SYSTEM_PROMPT with the rules (litgpt applies it through the checkpoint's prompt style).
"""

from __future__ import annotations

import hashlib

from ml_core.llm.facts import ExplanationFacts, percent
from ml_core.llm.knowledge import DISCLAIMER

FACTS_OPEN, FACTS_CLOSE = "<facts>", "</facts>"
ANSWER_OPEN, ANSWER_CLOSE = "<explanation>", "</explanation>"

SYSTEM_PROMPT = (
    "You explain a preliminary, automated chest X-ray result to a patient in plain language, "
    "using only the facts given. Name only the finding given as 'finding'; never name any other "
    "condition. Never state more certainty than the given probability, never say the patient has "
    "a disease, never recommend medicines or doses. Say what the finding means, what the "
    "highlighted area shows, and two questions to ask the doctor. Write at most 150 words and end "
    f"with exactly: {DISCLAIMER}"
)


def build_prompt(facts: ExplanationFacts) -> str:
    others = ", ".join(
        f"{name} {percent(p)}%"
        for name, p in sorted(facts.probabilities.items(), key=lambda kv: -kv[1])
        if name != facts.label
    )
    lines = [
        FACTS_OPEN,
        f"finding: {facts.label}",
        f"probability: {percent(facts.probability)}%",
        f"confidence: {facts.band}",
        f"others: {others or 'none'}",
        f"region: {facts.region or 'none'}",
        f"pattern: {facts.pattern or 'none'}",
        f"age: {facts.age if facts.age is not None else 'not given'}",
        f"symptoms: {', '.join(facts.symptoms) or 'none given'}",
        FACTS_CLOSE,
        ANSWER_OPEN,
    ]
    return "\n".join(lines) + "\n"


def prompt_hash(prompt: str, system_prompt: str = SYSTEM_PROMPT) -> str:
    return hashlib.sha256(f"{system_prompt}\n\n{prompt}".encode()).hexdigest()


def clean_completion(text: str) -> str:
    """Cut a raw completion at the end marker (or a new facts block) and tidy whitespace."""
    for marker in (ANSWER_CLOSE, FACTS_OPEN, ANSWER_OPEN):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    return " ".join(text.split())
