"""Uploaded clinical tables. A row exists only for a file that parsed: the upload service
validates and profiles the bytes before anything is written."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.jobs.models import Job


def dataset_path(instance: TabularDataset, filename: str) -> str:
    # Named by content, not by the uploader's file name (which may carry a patient's name).
    return f"tabular/datasets/{instance.sha256}.csv"


class TabularDataset(models.Model):
    name = models.CharField(max_length=120)
    file = models.FileField(upload_to=dataset_path, max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="of the bytes as uploaded")
    n_bytes = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=list)
    encoding = models.CharField(max_length=32)
    delimiter = models.CharField(max_length=4)
    notes = models.JSONField(default=list, blank=True, help_text="what the reader had to assume (encoding...)")
    profile = models.JSONField(default=dict, blank=True, help_text="ml_core.tabular.profile's report")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows} rows)"


class TabularExperiment(Job):
    """One training run of the tabular lab (lifecycle: apps.jobs, the fourth kind of job): clean,
    select, grid-search the chosen algorithms on a dataset. `progress` holds the live state
    (algorithm, grid point, folds done); `result` the summary; the model directory the artefact."""

    task_name = "workers.training.run_tabular_experiment"
    audit_prefix = "tabular.experiment"

    dataset = models.ForeignKey(TabularDataset, on_delete=models.PROTECT, related_name="experiments")
    config = models.JSONField(default=dict, help_text="ml_core.tabular.train.TrainConfig.to_dict()")
    result = models.JSONField(default=dict, blank=True)
    chosen_algorithm = models.CharField(max_length=64, blank=True)
    model_dir = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"tabular experiment {self.pk} on {self.dataset_id} ({self.status})"
