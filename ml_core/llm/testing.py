"""Tiny litgpt checkpoints for tests (seconds to build on CPU; they know nothing medical).

`make_tiny_checkpoint` trains a byte-level BPE tokenizer on a few sentences and saves a
2-layer GPT. With `memorize`, it also trains on those (facts prompt, explanation)
documents until it reproduces them: the generation path can then be tested to a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ml_core.llm.facts import ExplanationFacts
from ml_core.llm.pretrain import (
    ExplainerModelConfig,
    PretrainConfig,
    build_model,
    encode_documents,
    save_checkpoint,
    tokenizer_vocab_size,
    train,
    train_tokenizer,
)
from ml_core.llm.prompt import ANSWER_CLOSE, build_prompt

TINY_SPEC = ExplainerModelConfig(
    name="tiny-test-gpt", vocab_size=1000, n_layer=2, n_head=2, n_embd=64, intermediate_size=128, block_size=512
)
SENTENCES = (
    "The model looked at the chest X-ray.",
    "Please talk to your doctor about this preliminary result.",
    "The highlighted area shows where the model looked most.",
)


def document(facts: ExplanationFacts, text: str) -> str:
    return f"{build_prompt(facts)}{text}\n{ANSWER_CLOSE}"


def make_tiny_checkpoint(
    out_dir: str | Path, *, memorize: Sequence[tuple[ExplanationFacts, str]] = (), steps: int = 150, seed: int = 0
) -> Path:
    out_dir = Path(out_dir).resolve()
    docs = [document(facts, text) for facts, text in memorize]
    train_tokenizer([*SENTENCES, *docs], out_dir, vocab_size=TINY_SPEC.vocab_size)
    model = build_model(TINY_SPEC, tokenizer_vocab_size(out_dir), seed=seed)
    if docs:
        inputs, targets = encode_documents(out_dir, docs, block_size=TINY_SPEC.block_size)
        cfg = replace(
            PretrainConfig(),
            steps=steps,
            batch_size=len(docs),
            learning_rate=1e-2,
            min_learning_rate=1e-3,
            warmup_steps=5,
            log_every=max(1, steps),
            seed=seed,
        )
        train(model, inputs, targets, cfg)
    return save_checkpoint(model, out_dir, dtype="float32")


SAMPLE_PROBABILITIES = {"COVID-19": 0.05, "NORMAL": 0.13, "PNEUMONIA": 0.82}


def sample_facts() -> ExplanationFacts:
    """The facts the memorizing checkpoint answers (a champion prediction with no heat-map, age or symptoms)."""
    from ml_core.llm.facts import build_facts

    return build_facts(label="PNEUMONIA", probabilities=SAMPLE_PROBABILITIES)


def make_memorizing_checkpoint(out_dir: str | Path) -> Path:
    """A tiny checkpoint that writes the valid explanation of `sample_facts()` (and garbage elsewhere)."""
    from ml_core.llm.writing import compose_explanation

    facts = sample_facts()
    return make_tiny_checkpoint(out_dir, memorize=[(facts, compose_explanation(facts))], steps=100)
