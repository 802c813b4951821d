"""/api/v1/monitoring/drift: latest drift score per model version and the open retraining reviews (admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.accounts.permissions import AdminApi
from apps.monitoring import selectors


class DriftScoreSerializer(serializers.Serializer):
    model_version = serializers.CharField(source="model_version.version")
    registered_name = serializers.CharField(source="model_version.registered_name")
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    n = serializers.IntegerField()
    score = serializers.FloatField(
        allow_null=True, help_text="largest normalised signal; null when the window was too small"
    )
    threshold = serializers.FloatField()
    drifted = serializers.BooleanField()
    components = serializers.DictField(
        child=serializers.FloatField(), help_text="normalised signals: 1.0 = significant"
    )
    reference_source = serializers.CharField()


class RetrainingReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_version = serializers.CharField(source="model_version.version")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class DriftOverviewSerializer(serializers.Serializer):
    latest = DriftScoreSerializer(many=True)
    open_reviews = RetrainingReviewSerializer(many=True)


class DriftApi(AdminApi):
    @extend_schema(responses=DriftOverviewSerializer, summary="Drift of the serving models and open retraining reviews")
    def get(self, request):
        body = {"latest": selectors.latest_drift_scores(), "open_reviews": selectors.open_retraining_reviews()}
        return Response(DriftOverviewSerializer(body).data)
