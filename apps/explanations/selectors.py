"""Reads for explanations, always through the study permission check."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.explanations.models import Explanation, ExplanationEdit
from apps.studies.models import Study
from apps.studies.selectors import get_study_for_user
from ml_core.llm.facts import ExplanationFacts

ENGINE_LABELS = {
    "litgpt": "written by the language model and checked by the safety validator",
    "template": "standard text from a fixed template (the language model's text was not used)",
    "physician": "written or edited by a physician",
}


def explanation_for_study(study: Study) -> Explanation | None:
    return Explanation.objects.filter(study=study).first()


def get_explanation_for_user(user, study_id) -> tuple[Study, Explanation | None]:
    study = get_study_for_user(user, study_id)
    return study, explanation_for_study(study)


def explanation_facts(explanation: Explanation) -> ExplanationFacts | None:
    facts = (explanation.validation or {}).get("facts")
    return ExplanationFacts.from_dict(facts) if facts else None


def explanation_payload(explanation: Explanation, user) -> dict[str, Any]:
    """Patients see the text and which engine wrote it; clinical staff also see the technical
    summary and how it was made (model, prompt hash, time, validation)."""
    data: dict[str, Any] = {
        "study_id": str(explanation.study_id),
        "text": explanation.text,
        "engine": explanation.engine,
        "engine_display": ENGINE_LABELS.get(explanation.engine, explanation.engine),
        "created_at": explanation.created_at.isoformat(),
    }
    if getattr(user, "is_clinical_staff", False):
        validation = explanation.validation or {}
        data.update(
            technical_summary=explanation.technical_summary,
            model_name=explanation.model_name,
            prompt_hash=explanation.prompt_hash,
            generation_ms=explanation.generation_ms,
            validation={"outcome": validation.get("outcome"), "attempts": validation.get("attempts", [])},
            edits=explanation.edits.count(),
        )
    return data


def edits_for_training() -> QuerySet[ExplanationEdit]:
    """The latest edit of each explanation (earlier drafts are superseded)."""
    latest = {}
    for edit in ExplanationEdit.objects.order_by("explanation_id", "-created_at", "-pk").only("pk", "explanation_id"):
        latest.setdefault(edit.explanation_id, edit.pk)
    return ExplanationEdit.objects.filter(pk__in=latest.values()).exclude(prompt="").order_by("pk")
