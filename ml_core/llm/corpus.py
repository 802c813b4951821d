"""The explanation corpus the project's own model is trained on, written from the facts table.

Each document is one prompt (structured facts, the same layout the engine sends) followed by
an explanation composed with random phrasings and the end marker. Every explanation is
checked with the validator as it is written, so the corpus cannot teach what the validator
rejects.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from ml_core.llm.facts import BAND_FLOORS, ExplanationFacts, build_facts
from ml_core.llm.knowledge import SYMPTOMS
from ml_core.llm.prompt import ANSWER_CLOSE, build_prompt
from ml_core.llm.validate import validate_explanation
from ml_core.llm.writing import compose_explanation, random_chooser
from ml_core.serve import ZONES

CORPUS_FILE = "corpus.jsonl"


def random_facts(label: str, classes: Sequence[str], rng: random.Random) -> ExplanationFacts:
    """Facts for `label` as the top class, spread over all three confidence bands."""
    floor = 1.0 / len(classes)
    band_ranges = [
        (floor + 0.02, BAND_FLOORS["moderate"]),
        (BAND_FLOORS["moderate"], BAND_FLOORS["high"]),
        (BAND_FLOORS["high"], 0.995),
    ]
    low, high = band_ranges[rng.randrange(len(band_ranges))]
    top = rng.uniform(max(low, floor + 0.02), high)
    others = [c for c in classes if c != label]
    weights = [rng.random() + 0.05 for _ in others]
    # Keep every other class below the top one.
    shares = [min((1.0 - top) * w / sum(weights), top - 0.01) for w in weights]
    probabilities = dict.fromkeys(classes, 0.0)
    probabilities[label] = top
    probabilities.update(zip(others, shares))
    total = sum(probabilities.values())
    probabilities = {c: p / total for c, p in probabilities.items()}
    regions = None
    if rng.random() < 0.85:
        regions = {"dominant_region": rng.choice(ZONES), "high_activation_fraction": rng.choice([0.05, 0.1, 0.3, 0.5])}
    age = rng.randint(18, 90) if rng.random() < 0.7 else None
    symptom_names = list(SYMPTOMS)
    symptoms = " and ".join(rng.sample(symptom_names, rng.randint(0, 3))) if rng.random() < 0.7 else ""
    return build_facts(
        label=label, probabilities=probabilities, heatmap_regions=regions, age=age, symptoms_text=symptoms
    )


def corpus_documents(classes: Sequence[str], *, per_class: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    choose = random_chooser(rng)
    documents = []
    for _ in range(per_class):
        for label in classes:
            facts = random_facts(label, classes, rng)
            text = compose_explanation(facts, choose)
            result = validate_explanation(text, facts)
            if not result.passed:  # a bug in the phrase tables, not bad luck
                raise AssertionError(f"corpus text fails validation {result.failures}: {text}")
            documents.append(f"{build_prompt(facts)}{text}\n{ANSWER_CLOSE}")
    rng.shuffle(documents)
    return documents


def write_corpus(path: str | Path, documents: Sequence[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for doc in documents:
            fh.write(json.dumps({"text": doc}) + "\n")
    return path


def read_corpus(path: str | Path) -> list[str]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]
