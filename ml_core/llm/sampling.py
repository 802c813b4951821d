"""Sample explanations from a checkpoint on random facts (what the README's figures come from)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from ml_core.llm.corpus import random_facts
from ml_core.llm.engine import GenerationSettings, load_engine
from ml_core.llm.explain import explain


def sample_explanations(
    checkpoint_dir: Path, classes: Sequence[str], *, per_class: int, settings: GenerationSettings, seed: int = 99
) -> Iterator[str]:
    """Yields one report line per sample and a final pass-rate line."""
    engine = load_engine(checkpoint_dir, device=settings.device, threads=settings.threads)
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    for label in classes:
        for _ in range(per_class):
            facts = random_facts(label, classes, rng)
            result = explain(facts, engine, settings=settings)
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            failures = [a.get("failures") for a in result.attempts if not a.get("passed")]
            yield (
                f"[{label} p={facts.probability:.2f} {facts.band}] outcome={result.outcome} "
                f"ms={result.generation_ms:.0f} failures={failures}\n  {result.text}"
            )
    yield f"outcomes: {outcomes}"
