from __future__ import annotations

from django.conf import settings
from django.db import models


class Decision(models.TextChoices):
    CONFIRM = "confirm", "Confirm the model's label"
    CORRECT = "correct", "Correct to another label"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


class Review(models.Model):
    """A physician's decision on a study. Corrections add a new version; old ones are kept."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="reviews")
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    final_label = models.CharField(max_length=64, blank=True)
    note = models.TextField(blank=True, help_text="for the patient: shown on their study page and in the API")
    # Clinicians only: never rendered on a patient's page nor in the patient API.
    internal_note = models.TextField(blank=True, help_text="for clinicians only: never shown to the patient")
    fit_for_training = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField(
        # Versions go only with their study (which deletes them all at once).
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="superseded_by",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["study", "version"], name="one_review_per_study_version")]

    def __str__(self) -> str:
        return f"review {self.pk} of study {self.study_id}: {self.decision}"


class SampleSource(models.TextChoices):
    PHYSICIAN_REVIEW = "physician_review", "Physician review"
    DATASET_IMPORT = "dataset_import", "Dataset import"


class LabeledSample(models.Model):
    """One image with a trusted label waiting in (or used by) the retraining queue."""

    image = models.FileField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    label = models.CharField(max_length=64)
    source = models.CharField(max_length=24, choices=SampleSource.choices)
    study = models.ForeignKey("studies.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="samples")
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="samples")
    predicted_by = models.ForeignKey(
        "modelops.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_agreed = models.BooleanField(null=True, help_text="did the physician agree with the model?")
    excluded = models.BooleanField(
        default=False, help_text="withdrawn, e.g. patient deleted data without research consent"
    )
    used_in_runs = models.ManyToManyField("modelops.TrainingRun", blank=True, related_name="samples")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sample {self.pk}: {self.label} ({self.source})"


class ReviewClaim(models.Model):
    """A physician's lock on one study while reviewing it (one per study; it lapses at `expires_at`)."""

    study = models.OneToOneField(
        "studies.Study", on_delete=models.CASCADE, primary_key=True, related_name="review_claim"
    )
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_claims")
    claimed_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.study_id} claimed by {self.physician_id} until {self.expires_at:%H:%M}"
