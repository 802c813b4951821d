from __future__ import annotations

from django.conf import settings
from django.db import models


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
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["registered_name", "version"], name="unique_registered_version"),
            models.UniqueConstraint(
                fields=["alias"], condition=models.Q(alias="champion"), name="single_champion"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.registered_name} v{self.version}" + (f" @{self.alias}" if self.alias else "")


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TrainingRun(models.Model):
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    logs = models.TextField(blank=True)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    result_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
