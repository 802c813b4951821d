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
    # Registry: a succeeded experiment is a version of the model named after its dataset.
    model_name = models.SlugField(max_length=100, blank=True, db_index=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    # MLflow (best effort: a tracking failure is recorded here, never fails the experiment).
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_version = models.CharField(max_length=16, blank=True, help_text="version in MLflow's registry")
    tracking_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"tabular experiment {self.pk} on {self.dataset_id} ({self.status})"


# --- the registry: one model name per dataset, a version per succeeded experiment ---------------


class TabularModel(models.Model):
    """A registered tabular model (named after its dataset, a slug) and its champion: the
    experiment whose pipeline answers `POST /api/v1/tabular/models/{name}/predict`. Versions are
    the experiments registered under the name (TabularExperiment.model_name / model_version);
    `registered_name` is the name in MLflow's registry (shared with the image models)."""

    name = models.SlugField(max_length=100, unique=True)
    registered_name = models.CharField(max_length=140)
    champion = models.ForeignKey(TabularExperiment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"tabular model {self.name}"


class PromotionAction(models.TextChoices):
    PROMOTE = "promote", "promote"
    ROLLBACK = "rollback", "rollback"


class TabularPromotion(models.Model):
    """Audit trail of the champion of one model name: who moved it, to which experiment, from
    which, with which gate results and, for an override, the written reason."""

    model = models.ForeignKey(TabularModel, on_delete=models.CASCADE, related_name="promotions")
    action = models.CharField(max_length=16, choices=PromotionAction.choices)
    experiment = models.ForeignKey(TabularExperiment, on_delete=models.PROTECT, related_name="promotions")
    previous = models.ForeignKey(TabularExperiment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    gates = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.model.name} -> experiment {self.experiment_id}"
