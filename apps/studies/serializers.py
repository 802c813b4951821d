"""API shapes of a study (the contract apps build on: keep field names stable)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.studies.models import StudyStatus


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField()
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="calibrated probability per class")
    confidence = serializers.FloatField()
    model_version = serializers.CharField(source="model_version_label")
    model_name = serializers.CharField()
    # Server-side timing (upload → prediction = finished_at - the study's created_at).
    queued_at = serializers.DateTimeField(allow_null=True, help_text="the inference task was published")
    started_at = serializers.DateTimeField(allow_null=True, help_text="a worker took the study")
    finished_at = serializers.DateTimeField(allow_null=True, help_text="this result was stored")


class ExplanationSerializer(serializers.Serializer):
    text = serializers.CharField()
    engine = serializers.CharField()
    # Upload → explanation = created_at - the study's created_at (server-side, like the prediction's);
    # its queue wait = started_at - the prediction's finished_at.
    started_at = serializers.DateTimeField(allow_null=True, help_text="an explanation worker took the study")
    created_at = serializers.DateTimeField(help_text="this explanation was stored")


class ReviewSerializer(serializers.Serializer):
    final_label = serializers.CharField(help_text="empty when the physician judged the image not assessable")
    decision = serializers.CharField()
    note = serializers.CharField()
    reviewed_at = serializers.DateTimeField(source="created_at")


class StudyListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=StudyStatus.choices, required=False)
    created_after = serializers.DateField(required=False, help_text="from this day on (YYYY-MM-DD)")
    created_before = serializers.DateField(required=False, help_text="before this day (YYYY-MM-DD)")


class StudyErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class StudySerializer(serializers.Serializer):
    """Renders a `selectors.StudyResult` (the same object the web page renders)."""

    id = serializers.UUIDField(source="study.id")
    status = serializers.CharField(source="study.status")
    status_text = serializers.CharField(
        help_text="the status in the patient's words, e.g. 'Awaiting physician review', 'Reviewed', "
        "'Could not be analysed: <reason>'"
    )
    created_at = serializers.DateTimeField(source="study.created_at")
    prediction = PredictionSerializer(allow_null=True)
    low_confidence = serializers.BooleanField()
    explanation = ExplanationSerializer(allow_null=True)
    review = ReviewSerializer(allow_null=True)
    heatmap_url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    error = StudyErrorSerializer(allow_null=True, help_text="set when status is `failed`")

    def _absolute(self, name: str, study_id) -> str:
        path = reverse(name, kwargs={"study_id": study_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_image_url(self, result) -> str:
        return self._absolute("api-study-image", result.study.id)

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_heatmap_url(self, result) -> str | None:
        if result.prediction is None or not result.prediction.heatmap:
            return None
        return self._absolute("api-study-heatmap", result.study.id)


class StudyUploadSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="PNG, JPEG or DICOM chest X-ray (type is judged by content)")
    age = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=130)
    symptoms = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class StudyPageSerializer(serializers.Serializer):
    """One page of studies (?page=N&page_size=M)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = StudySerializer(many=True)
