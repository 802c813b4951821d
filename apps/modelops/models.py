from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.jobs.models import Job, JobStatus


class Alias(models.TextChoices):
    CHAMPION = "champion", "Champion (deployed)"
    CHALLENGER = "challenger", "Challenger (shadow)"
    ARCHIVED = "archived", "Archived"
    NONE = "", "None"


class ModelVersion(models.Model):
    """A mirror of one MLflow registry version (MLflow stays the source of truth; re-syncable).

    `package_uri` points at the model package (ONNX + package.json) the workers load.
    """

    registered_name = models.CharField(max_length=128)
    version = models.CharField(max_length=32)
    alias = models.CharField(max_length=16, choices=Alias.choices, blank=True, default="", db_index=True)
    classes = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)
    package_uri = models.CharField(max_length=500)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, default="ready")
    # Held-out evaluation (ml_core.evaluate) and the gate results computed from it.
    evaluation = models.JSONField(default=dict, blank=True)
    dataset_manifest_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["registered_name", "version"], name="unique_registered_version"),
            models.UniqueConstraint(fields=["alias"], condition=models.Q(alias="champion"), name="single_champion"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_name} v{self.version}" + (f" @{self.alias}" if self.alias else "")


RunStatus = JobStatus  # the name the rest of the code (and its tests) use


class Trigger(models.TextChoices):
    MANUAL = "manual", "Started by an admin"
    NEW_LABELS = "new_labels", "Enough new physician labels"
    LOW_AGREEMENT = "low_agreement", "Champion disagrees with physicians"


class TrainingRun(Job):
    """One training job (lifecycle: apps.jobs). `progress` holds the live state (epoch, history of
    loss/accuracy) so a reloaded page can redraw the curves; MLflow holds the permanent record."""

    task_name = "workers.training.run_training"
    audit_prefix = "training"

    params = models.JSONField(default=dict)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    trigger_reason = models.TextField(blank=True)
    dataset_summary = models.JSONField(default=dict, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    logs = models.TextField(blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    result_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"


class AugmentationJob(Job):
    """Materialise augmented copies of one under-represented class (augmentation queue)."""

    task_name = "workers.augmentation.run_augmentation"
    audit_prefix = "augmentation"

    label = models.CharField(max_length=64)
    target_count = models.PositiveIntegerField()
    intensity = models.CharField(max_length=16, default="medium")
    output_dir = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"augmentation job {self.pk}: {self.label} ({self.status})"


class PromotionAction(models.TextChoices):
    PROMOTE = "promote", "Promote"
    ROLLBACK = "rollback", "Rollback"


class Promotion(models.Model):
    """History of the champion alias: what rollback restores, and who overrode which gate."""

    action = models.CharField(max_length=16, choices=PromotionAction.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    previous = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    gates = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.version_id} at {self.created_at:%Y-%m-%d %H:%M}"
