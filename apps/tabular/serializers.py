"""/api/v1/tabular bodies and answers (thin: the rules are in services.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rest_framework import serializers

from apps.tabular.models import TabularDataset, TabularExperiment, TabularPromotion


def input_schema(experiment: TabularExperiment | None) -> dict[str, Any] | None:
    """The model directory's schema.json (columns, kinds, units, allowed ranges/categories)."""
    import json

    if experiment is None or not experiment.model_dir:
        return None
    try:
        return json.loads((Path(experiment.model_dir) / "schema.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def test_metrics(experiment: TabularExperiment) -> dict[str, Any]:
    test = (experiment.result or {}).get("test") or {}
    return {k: v for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class TabularDatasetSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.SerializerMethodField()

    class Meta:
        model = TabularDataset
        fields = ["id", "name", "sha256", "n_bytes", "rows", "columns", "encoding", "delimiter", "notes",
                  "uploaded_by", "created_at"]  # fmt: skip

    def get_uploaded_by(self, obj) -> str | None:
        return obj.uploaded_by.get_username() if obj.uploaded_by_id else None


class TabularDatasetDetailSerializer(TabularDatasetSerializer):
    class Meta(TabularDatasetSerializer.Meta):
        fields = [*TabularDatasetSerializer.Meta.fields, "profile"]


class TabularDatasetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (encoding and delimiter are detected; size and row limits apply)")
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=120)
    target = serializers.CharField(required=False, allow_blank=True, default="", help_text="the outcome column")


class TabularExperimentSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = TabularExperiment
        fields = ["id", "dataset", "status", "chosen_algorithm", "model_name", "model_version", "metrics",
                  "mlflow_run_id", "created_at", "finished_at"]  # fmt: skip

    def get_metrics(self, obj) -> dict[str, float]:
        """Test figures of the chosen pipeline (held-out split)."""
        return test_metrics(obj)


class TabularExperimentDetailSerializer(TabularExperimentSerializer):
    gates = serializers.SerializerMethodField()

    class Meta(TabularExperimentSerializer.Meta):
        fields = [*TabularExperimentSerializer.Meta.fields, "config", "progress", "result", "error", "mlflow_version",
                  "tracking_error", "cancel_requested", "started_at", "heartbeat_at", "gates"]  # fmt: skip

    def get_gates(self, obj) -> list[dict[str, Any]]:
        """Promotion gates: [{name, passed, value, threshold, detail}]."""
        from apps.tabular.selectors import check_gates

        return check_gates(obj)


class TabularExperimentStartSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(min_value=1)
    config = serializers.DictField(
        help_text="ml_core.tabular TrainConfig fields: target, algorithms, scoring, grid (full|quick), folds, "
        "test_size, clean, select, ..."
    )


class TabularPromoteSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="a written reason: promotes despite failed gates"
    )


class TabularPromotionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    experiment = serializers.IntegerField(source="experiment_id")
    version = serializers.IntegerField(source="experiment.model_version", allow_null=True)
    previous = serializers.IntegerField(source="previous_id", allow_null=True)

    class Meta:
        model = TabularPromotion
        fields = ["model", "action", "experiment", "version", "previous", "gates", "override_reason", "created_at"]


class TabularChampionSerializer(serializers.Serializer):
    experiment = serializers.IntegerField(source="pk")
    version = serializers.IntegerField(source="model_version", allow_null=True)
    mlflow_version = serializers.CharField()
    algorithm = serializers.CharField(source="chosen_algorithm")
    metrics = serializers.SerializerMethodField()
    input_schema = serializers.SerializerMethodField()

    def get_metrics(self, obj) -> dict[str, float]:
        return test_metrics(obj)

    def get_input_schema(self, obj) -> dict[str, Any] | None:
        """columns (name, kind, unit, allowed_min/max or categories, nullable), target, normalise."""
        return input_schema(obj)


class TabularModelEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    registered_name = serializers.CharField(help_text="the name in MLflow's registry")
    versions = serializers.IntegerField()
    latest_version = serializers.IntegerField(allow_null=True)
    champion = TabularChampionSerializer(allow_null=True)


class TabularPredictionSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    experiment = serializers.IntegerField()
    algorithm = serializers.CharField()
    model_sha256 = serializers.CharField()
    predictions = serializers.ListField(
        child=serializers.DictField(), help_text="per row: class, label, probability, threshold, top_features"
    )
    notice = serializers.CharField()


PREDICT_ROW = {"type": "object", "additionalProperties": True, "description": "column name -> value"}
PREDICT_REQUEST = {
    "oneOf": [
        PREDICT_ROW,
        {"type": "array", "items": PREDICT_ROW, "minItems": 1},
    ],
    "description": "one row (an object) or a list of rows; the champion's input schema says which columns",
}
