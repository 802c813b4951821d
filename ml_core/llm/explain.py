"""Facts in, a safe explanation out: generate → validate → regenerate once → template.

The engine is optional: with none (not configured, failed to load) the template is used
straight away. An engine error during generation also falls back to the template — an
explanation problem must never stop the result from being shown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ml_core.llm.engine import Completion, GenerationSettings
from ml_core.llm.facts import ExplanationFacts
from ml_core.llm.prompt import SYSTEM_PROMPT, build_prompt, clean_completion, prompt_hash
from ml_core.llm.validate import ValidationLimits, validate_explanation
from ml_core.llm.writing import technical_summary, template_explanation

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # first generation + one regeneration
TEMPLATE_ENGINE = "template"


class Engine(Protocol):
    name: str
    model_id: str

    def generate(
        self, prompt: str, *, settings: GenerationSettings, system_prompt: str | None = None, seed: int | None = None
    ) -> Completion: ...


@dataclass
class ExplanationOutcome:
    text: str
    technical_summary: str
    engine: str  # litgpt | template
    model_name: str  # engine model id, e.g. deepmed-explainer@3f2a...; "" for the template
    prompt_hash: str
    generation_ms: float
    outcome: str  # passed | passed_on_retry | template_after_failures | template_engine_error | template_no_engine
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def validation_failures(self) -> int:
        return sum(1 for a in self.attempts if not a.get("passed"))

    def validation_record(self, facts: ExplanationFacts) -> dict[str, Any]:
        """What the Explanation row keeps: outcome, each attempt's verdict, the facts used."""
        return {"outcome": self.outcome, "attempts": self.attempts, "facts": facts.to_dict()}


def explain(
    facts: ExplanationFacts,
    engine: Engine | None,
    *,
    settings: GenerationSettings | None = None,
    limits: ValidationLimits | None = None,
    model_label: str = "",
    engine_error: str = "",
) -> ExplanationOutcome:
    settings = settings or GenerationSettings()
    prompt = build_prompt(facts)
    summary = technical_summary(facts, model=model_label)
    started = time.perf_counter()
    attempts: list[dict[str, Any]] = []

    def fallback(outcome: str) -> ExplanationOutcome:
        return ExplanationOutcome(
            text=template_explanation(facts),
            technical_summary=summary,
            engine=TEMPLATE_ENGINE,
            model_name=engine.model_id if engine is not None else "",
            prompt_hash=prompt_hash(prompt),
            generation_ms=(time.perf_counter() - started) * 1000.0,
            outcome=outcome,
            attempts=attempts,
        )

    if engine is None:
        if engine_error:
            attempts.append({"error": engine_error})
        return fallback("template_no_engine")
    for attempt in range(MAX_ATTEMPTS):
        try:
            completion = engine.generate(
                prompt, settings=settings, system_prompt=SYSTEM_PROMPT, seed=settings.seed + attempt
            )
        except Exception as exc:
            logger.warning("explanation engine %s failed: %s", engine.model_id, exc, exc_info=True)
            attempts.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
            return fallback("template_engine_error")
        text = clean_completion(completion.text)
        verdict = validate_explanation(text, facts, limits)
        attempts.append(
            {
                **verdict.to_dict(),
                "ms": round(completion.seconds * 1000.0, 1),
                **({} if verdict.passed else {"rejected_text": text[:2000]}),
            }
        )
        if verdict.passed:
            return ExplanationOutcome(
                text=text,
                technical_summary=summary,
                engine=engine.name,
                model_name=engine.model_id,
                prompt_hash=prompt_hash(prompt),
                generation_ms=(time.perf_counter() - started) * 1000.0,
                outcome="passed" if attempt == 0 else "passed_on_retry",
                attempts=attempts,
            )
    return fallback("template_after_failures")
