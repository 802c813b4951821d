"""Prometheus instruments for explanations, observed in the process that generates them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

GENERATION_LATENCY = Histogram(
    "deepmed_explanation_generation_seconds",
    "Explanation generation time per study (all attempts + validation), by engine used.",
    ["engine"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
VALIDATION_FAILURES = Counter(
    "deepmed_explanation_validation_failures_total",
    "Generated explanations rejected by the validator, by first failed rule.",
    ["rule"],
)
EXPLANATIONS = Counter(
    "deepmed_explanations_total", "Explanations stored, by engine and outcome.", ["engine", "outcome"]
)


def observe_explanation(outcome) -> None:
    """`outcome` is an ml_core.llm.explain.ExplanationOutcome."""
    GENERATION_LATENCY.labels(engine=outcome.engine).observe(outcome.generation_ms / 1000.0)
    EXPLANATIONS.labels(engine=outcome.engine, outcome=outcome.outcome).inc()
    for attempt in outcome.attempts:
        if attempt.get("failures"):
            VALIDATION_FAILURES.labels(rule=attempt["failures"][0].split(":")[0]).inc()
