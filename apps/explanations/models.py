"""Physician edits of explanations. The Explanation itself lives in apps.studies (one per study)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExplanationEdit(models.Model):
    """One physician edit: what the engine wrote, what the physician made of it, and the
    facts prompt it answered — an instruction/response pair for the LoRA fine-tune."""

    explanation = models.ForeignKey("studies.Explanation", on_delete=models.CASCADE, related_name="edits")
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="explanation_edits")
    original_text = models.TextField()
    original_engine = models.CharField(max_length=32)
    edited_text = models.TextField()
    prompt = models.TextField(help_text="the structured-facts prompt (no names or identifiers)")
    validation = models.JSONField(default=dict, blank=True, help_text="validator verdict on the edited text (informational)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"edit of explanation {self.explanation_id} by {self.editor_id}"
