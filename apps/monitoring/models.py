from __future__ import annotations

from django.conf import settings
from django.db import models


class DriftScore(models.Model):
    """One drift measurement of a model version over a window of its predictions (ml_core.drift)."""

    model_version = models.ForeignKey("modelops.ModelVersion", on_delete=models.CASCADE, related_name="drift_scores")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    n = models.PositiveIntegerField(help_text="predictions in the window")
    label_psi = models.FloatField()
    confidence_ks = models.FloatField()
    embedding_ks = models.FloatField(null=True, blank=True)
    components = models.JSONField(default=dict, help_text="normalised signals: 1.0 = significant")
    score = models.FloatField(
        null=True, blank=True, help_text="largest normalised signal; empty when the window was too small"
    )
    threshold = models.FloatField()
    drifted = models.BooleanField(default=False)
    reference_source = models.CharField(max_length=32, help_text="training | first_window")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return (
            f"drift {self.score} for {self.model_version} ({self.window_start:%Y-%m-%d %H:%M}–{self.window_end:%H:%M})"
        )


class RetrainingReview(models.Model):
    """A model version marked for retraining review because its inputs/outputs drifted.
    Open until an admin resolves it (modelops reads it through selectors.open_retraining_reviews)."""

    model_version = models.ForeignKey(
        "modelops.ModelVersion", on_delete=models.CASCADE, related_name="retraining_reviews"
    )
    drift_score = models.ForeignKey(DriftScore, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version"], condition=models.Q(resolved_at=None), name="one_open_review_per_version"
            ),
        ]

    def __str__(self) -> str:
        return f"retraining review {self.pk} ({'resolved' if self.resolved_at else 'open'})"
