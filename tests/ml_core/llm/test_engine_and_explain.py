"""The litgpt engine on tiny checkpoints, and generate → validate → regenerate → template."""

from dataclasses import dataclass, field

import pytest

from ml_core.llm.engine import (
    Completion,
    EngineUnavailable,
    GenerationSettings,
    check_checkpoint_dir,
    get_engine,
    load_engine,
)
from ml_core.llm.explain import explain
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.prompt import build_prompt, prompt_hash
from ml_core.llm.testing import sample_facts
from ml_core.llm.writing import TEMPLATE_LABEL, compose_explanation

FAST = GenerationSettings(max_new_tokens=40, device="cpu")


def test_relative_or_incomplete_checkpoints_are_refused_before_litgpt_sees_them(tmp_path, tiny_llm_checkpoint):
    with pytest.raises(EngineUnavailable, match="absolute"):
        check_checkpoint_dir("checkpoints/microsoft/phi-2")  # litgpt would try the hub
    (tmp_path / "model_config.yaml").write_text("name: x\n")
    with pytest.raises(EngineUnavailable, match="lit_model.pth"):
        check_checkpoint_dir(tmp_path)
    assert check_checkpoint_dir(tiny_llm_checkpoint) == tiny_llm_checkpoint


def test_tiny_checkpoint_loads_once_and_generates(tiny_llm_checkpoint):
    engine = get_engine(tiny_llm_checkpoint, device="cpu")
    assert get_engine(tiny_llm_checkpoint, device="cpu") is engine  # kept warm
    assert engine.device == "cpu" and engine.model_id.startswith("tiny-test-gpt@")
    completion = engine.generate("The model looked at", settings=FAST, seed=3)
    assert isinstance(completion.text, str) and completion.text
    assert engine.generate("The model looked at", settings=FAST, seed=3).text == completion.text  # seeded


def test_random_model_output_fails_twice_then_the_template_is_used(tiny_llm_checkpoint):
    facts = sample_facts()
    outcome = explain(facts, load_engine(tiny_llm_checkpoint, device="cpu"), settings=FAST)
    assert outcome.outcome == "template_after_failures"
    assert outcome.engine == "template" and outcome.text.startswith(TEMPLATE_LABEL)
    assert [a["passed"] for a in outcome.attempts] == [False, False]
    assert all(a["failures"] for a in outcome.attempts)
    assert outcome.model_name.startswith("tiny-test-gpt@")  # the engine that was tried is on record
    assert outcome.prompt_hash == prompt_hash(build_prompt(facts))


def test_memorizing_model_passes_the_validator(memorizing_llm_checkpoint):
    facts = sample_facts()
    outcome = explain(
        facts,
        load_engine(memorizing_llm_checkpoint, device="cpu"),
        settings=GenerationSettings(temperature=0.1, device="cpu"),
    )
    assert outcome.outcome == "passed", outcome.attempts
    assert outcome.engine == "litgpt"
    assert outcome.text == compose_explanation(facts) and outcome.text.endswith(DISCLAIMER)
    assert outcome.generation_ms > 0


@dataclass
class ScriptedEngine:
    """Returns queued texts (or raises) — drives the retry logic without a model."""

    replies: list
    name: str = "litgpt"
    model_id: str = "scripted@1"
    seeds: list = field(default_factory=list)

    def generate(self, prompt, *, settings, system_prompt=None, seed=None):
        self.seeds.append(seed)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return Completion(text=reply, seconds=0.01)


def test_a_rejected_first_text_is_regenerated_once_with_another_seed():
    facts = sample_facts()
    engine = ScriptedEngine([f"Definitely COVID-19. {DISCLAIMER}", compose_explanation(facts) + "\n</explanation>"])
    outcome = explain(facts, engine)
    assert outcome.outcome == "passed_on_retry"
    assert outcome.text == compose_explanation(facts)
    assert outcome.attempts[0]["passed"] is False and "other_finding:COVID-19" in outcome.attempts[0]["failures"]
    assert outcome.attempts[0]["rejected_text"].startswith("Definitely")
    assert engine.seeds[0] != engine.seeds[1]


def test_an_engine_error_falls_back_to_the_template():
    outcome = explain(sample_facts(), ScriptedEngine([RuntimeError("CUDA out of memory")]))
    assert outcome.outcome == "template_engine_error" and outcome.engine == "template"
    assert "CUDA out of memory" in outcome.attempts[0]["error"]


def test_no_engine_uses_the_template_and_says_why():
    outcome = explain(sample_facts(), None, engine_error="checkpoint missing")
    assert (outcome.outcome, outcome.engine, outcome.model_name) == ("template_no_engine", "template", "")
    assert outcome.attempts == [{"error": "checkpoint missing"}]
