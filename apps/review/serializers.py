"""API shapes of the review endpoints."""

from __future__ import annotations

from rest_framework import serializers

from apps.review import priority
from apps.review.models import Decision


class WorklistQuerySerializer(serializers.Serializer):
    label = serializers.CharField(required=False, allow_blank=True, help_text="the model's label")
    confidence = serializers.ChoiceField(choices=priority.CONFIDENCE_BANDS, required=False, allow_blank=True)
    date_from = serializers.DateField(required=False, help_text="studies created on or after (YYYY-MM-DD)")
    date_to = serializers.DateField(required=False, help_text="studies created on or before (YYYY-MM-DD)")


class ReviewClaimSerializer(serializers.Serializer):
    physician = serializers.CharField(source="physician.username")
    claimed_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class WorklistItemSerializer(serializers.Serializer):
    study_id = serializers.UUIDField(source="study.id")
    status = serializers.CharField(source="study.status")
    created_at = serializers.DateTimeField(source="study.created_at")
    label = serializers.CharField(source="prediction.label")
    confidence = serializers.FloatField(source="prediction.confidence")
    probabilities = serializers.DictField(source="prediction.probabilities", child=serializers.FloatField())
    model_version = serializers.CharField(source="prediction.model_version_label")
    severity = serializers.IntegerField()
    suspected_severe = serializers.BooleanField()
    uncertainty = serializers.FloatField(help_text="normalised entropy of the probabilities (0..1)")
    confidence_band = serializers.CharField()
    claim = ReviewClaimSerializer(allow_null=True)


class WorklistCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    shown = serializers.IntegerField()
    claimed = serializers.IntegerField()
    by_label = serializers.DictField(child=serializers.IntegerField())
    by_confidence = serializers.DictField(child=serializers.IntegerField())


class ReviewWorklistSerializer(serializers.Serializer):
    counts = WorklistCountsSerializer()
    results = WorklistItemSerializer(many=True, source="items")


class ReviewCreateSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    final_label = serializers.CharField(required=False, allow_blank=True, default="")
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=4000, help_text="for the patient: they see it"
    )
    internal_note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=4000, help_text="for clinicians only"
    )
    fit_for_training = serializers.BooleanField(required=False, default=True)


class IdentifyingTextSerializer(serializers.Serializer):
    flagged = serializers.BooleanField(help_text="true: identifying text is visible in the image (never trains)")


class IdentifyingTextStateSerializer(serializers.Serializer):
    study_id = serializers.UUIDField()
    flagged = serializers.BooleanField()
    identifying_text = serializers.CharField(
        help_text="why: burned_in_annotation, secondary_capture, physician; empty when not flagged"
    )
    samples_excluded = serializers.IntegerField(help_text="training samples withdrawn by this request")


class ReviewVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study_id = serializers.UUIDField()
    physician = serializers.CharField(source="physician.username")
    decision = serializers.CharField()
    final_label = serializers.CharField()
    note = serializers.CharField(help_text="for the patient")
    internal_note = serializers.CharField(help_text="for clinicians only (never in the patient's API)")
    fit_for_training = serializers.BooleanField()
    version = serializers.IntegerField()
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)
    created_at = serializers.DateTimeField()
