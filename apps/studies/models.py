from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class StudyStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    QUEUED = "queued", "Queued"
    PREDICTING = "predicting", "Analysing"
    PREDICTED = "predicted", "Preliminary result ready"
    EXPLAINING = "explaining", "Writing explanation"
    EXPLAINED = "explained", "Explained"
    REVIEWED = "reviewed", "Reviewed by a physician"
    FAILED = "failed", "Failed"


class IdentifyingText(models.TextChoices):
    """Why a study's pixels may show identifying text (a name, an id): such an image is kept for
    the patient and the physicians but never used for training or exported."""

    NONE = "", "None seen"
    BURNED_IN_ANNOTATION = "burned_in_annotation", "Text burned in (DICOM BurnedInAnnotation)"
    SECONDARY_CAPTURE = "secondary_capture", "DICOM secondary capture (screenshot or scan)"
    PHYSICIAN = "physician", "Identifying text seen by a physician"


def study_image_path(instance: Study, filename: str) -> str:
    # Random names: nothing about the patient or the original file name is in the path.
    return f"studies/{instance.id}/image-{uuid.uuid4().hex}.png"


def study_thumbnail_path(instance: Study, filename: str) -> str:
    return f"studies/{instance.id}/thumbnail-{uuid.uuid4().hex}.png"


def heatmap_path(instance: Prediction, filename: str) -> str:
    return f"studies/{instance.study_id}/heatmap-{uuid.uuid4().hex}.png"


class Study(models.Model):
    """One uploaded chest X-ray and where it is in its life (see services.transition_study)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studies")
    # A de-identified PNG of the pixels (DICOM tags and JPEG/PNG metadata are not kept).
    image = models.FileField(upload_to=study_image_path, max_length=255)
    # The same pixels at most 160 px on a side, for lists (empty for studies from before it).
    thumbnail = models.FileField(upload_to=study_thumbnail_path, max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="sha256 of the uploaded bytes")
    original_format = models.CharField(max_length=8)  # png | jpeg | dicom
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    technical_tags = models.JSONField(default=dict, blank=True)
    patient_age = models.PositiveSmallIntegerField(null=True, blank=True)
    symptoms = models.TextField(blank=True, max_length=1000)
    # Set at intake from the DICOM header or by a physician (services.set_identifying_text):
    # non-empty = identifying text may be visible, so the image never trains.
    identifying_text = models.CharField(max_length=32, choices=IdentifyingText.choices, blank=True, default="")
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.UPLOADED, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The inference step (services.transition_study): when the study last entered `queued`
    # (inference task published) and `predicting` (a worker took it). Copied onto its Prediction.
    queued_at = models.DateTimeField(null=True, blank=True)
    inference_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"Study {self.id} ({self.status})"

    @property
    def has_identifying_text(self) -> bool:
        return bool(self.identifying_text)


class PredictionRole(models.TextChoices):
    CHAMPION = "champion", "Champion (shown)"
    CHALLENGER = "challenger", "Challenger (shadow, never shown to patients)"


class Prediction(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="predictions")
    role = models.CharField(max_length=16, choices=PredictionRole.choices, default=PredictionRole.CHAMPION)
    model_version = models.ForeignKey(
        "modelops.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="predictions"
    )
    # Copied so the record stays meaningful if the registry entry is removed.
    model_name = models.CharField(max_length=128)
    model_version_label = models.CharField(max_length=64)
    label = models.CharField(max_length=64)
    probabilities = models.JSONField(help_text="calibrated probability per class")
    confidence = models.FloatField()
    latency_ms = models.FloatField()
    heatmap = models.FileField(upload_to=heatmap_path, max_length=255, blank=True)
    heatmap_regions = models.JSONField(default=dict, blank=True)
    ood_score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Server-side latency of this prediction: the study's inference task published (queued_at),
    # taken by a worker (started_at), this result stored (finished_at). Upload → prediction is
    # finished_at - study.created_at (metrics: deepmed_upload_to_prediction_seconds).
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "role"], name="one_prediction_per_study_role")]

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.2f}) by {self.model_name} v{self.model_version_label}"
