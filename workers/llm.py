"""Explanations: study id in, stored Explanation (language model or template) out. Idempotent."""

from __future__ import annotations

from celery import shared_task

from workers import STUDY_TASK_OPTIONS


@shared_task(name="workers.llm.generate_explanation", **STUDY_TASK_OPTIONS)
def generate_explanation(study_id: str) -> str:
    from apps.explanations import services

    explanation = services.generate_explanation(study_id)
    return "skipped" if explanation is None else explanation.engine


@shared_task(name="workers.llm.requeue_unexplained_studies", acks_late=True)
def requeue_unexplained_studies() -> int:
    from apps.explanations import services

    return services.requeue_unexplained_studies()
