"""Explanations of studies (one per study), the physicians' edits of them, and the LoRA fine-tune job."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.jobs.models import Job


class Explanation(models.Model):
    """What the patient reads about their study's result: the language model's text, the template's,
    or a physician's edit (`engine`). One per study, written by this app's services alone."""

    study = models.OneToOneField("studies.Study", on_delete=models.CASCADE, related_name="explanation")
    text = models.TextField()
    technical_summary = models.TextField(blank=True)
    engine = models.CharField(max_length=32, help_text="litgpt | template")
    model_name = models.CharField(max_length=128, blank=True)
    prompt_hash = models.CharField(max_length=64, blank=True)
    generation_ms = models.FloatField(null=True, blank=True)
    validation = models.JSONField(default=dict, blank=True)
    # Server-side timing: queued when the prediction was stored (the prediction's finished_at), then
    # a worker took the study (started_at), then this row was stored (created_at).
    started_at = models.DateTimeField(null=True, blank=True, help_text="an llm worker took the study")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved here from apps.studies with its table unchanged (migrations: state only).
        db_table = "studies_explanation"

    def __str__(self) -> str:
        return f"explanation of study {self.study_id} ({self.engine})"


class ExplanationEdit(models.Model):
    """One physician edit: what the engine wrote, what the physician made of it, and the
    facts prompt it answered — an instruction/response pair for the LoRA fine-tune."""

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="edits")
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="explanation_edits")
    original_text = models.TextField()
    original_engine = models.CharField(max_length=32)
    edited_text = models.TextField()
    prompt = models.TextField(help_text="the structured-facts prompt (no names or identifiers)")
    validation = models.JSONField(
        default=dict, blank=True, help_text="validator verdict on the edited text (informational)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"edit of explanation {self.explanation_id} by {self.editor_id}"


class ExplainerFinetuneRun(Job):
    """A LoRA fine-tune of the explanation model on the physicians' edits: a job on the
    `training` queue, tracked in MLflow like the image models (run id kept here)."""

    task_name = "workers.training.finetune_explainer"
    audit_prefix = "explainer.finetune"

    steps = models.PositiveIntegerField(default=20)
    examples = models.PositiveIntegerField(null=True, blank=True)
    checkpoint_dir = models.CharField(max_length=500, blank=True, help_text="set DEEPMED_LLM_CHECKPOINT to deploy it")
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"explainer fine-tune {self.pk} ({self.status})"
