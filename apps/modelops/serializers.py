from __future__ import annotations

from rest_framework import serializers

from apps.modelops.models import ModelVersion, TrainingRun
from apps.modelops.services.augmentation import AUGMENTATION_LEVELS
from apps.modelops.services.training import INITIALISATIONS, TIERS


class ModelVersionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="registered_name")
    created_by = serializers.SerializerMethodField()
    evaluation_metrics = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "alias",
            "classes",
            "metrics",
            "evaluation_metrics",
            "mlflow_run_id",
            "dataset_manifest_sha256",
            "status",
            "created_by",
            "created_at",
        ]

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    def get_evaluation_metrics(self, obj) -> dict:
        """Held-out metrics (without the curves)."""
        keep = (
            "macro_f1",
            "accuracy",
            "per_class_recall",
            "latency_ms",
            "n",
            "dataset_manifest_sha256",
            "holdout_fingerprint",
        )
        return {k: obj.evaluation[k] for k in keep if k in obj.evaluation}


class TrainingRunSerializer(serializers.ModelSerializer):
    result_version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "status",
            "params",
            "trigger",
            "trigger_reason",
            "progress",
            "error",
            "mlflow_run_id",
            "dataset_summary",
            "result_version",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_result_version(self, obj) -> str | None:
        v = obj.result_version
        return None if v is None else f"{v.registered_name}/{v.version}"


class TrainingRunCreateSerializer(serializers.Serializer):
    architecture = serializers.CharField()
    tier = serializers.ChoiceField(choices=TIERS)
    augmentation = serializers.ChoiceField(choices=AUGMENTATION_LEVELS, default="light")
    initialisation = serializers.ChoiceField(
        choices=INITIALISATIONS,
        required=False,
        default="",
        help_text="champion (warm start, the default), imagenet, or random; see DEEPMED_TRAINING_INIT",
    )


class PromoteSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="a written reason: promotes despite failed gates (audited)",
    )


class PromotionSerializer(serializers.Serializer):
    action = serializers.CharField()
    champion = serializers.CharField()
    previous = serializers.CharField(allow_null=True)
    gates = serializers.ListField(child=serializers.DictField())
    override_reason = serializers.CharField()


class RetrainingQueueSerializer(serializers.Serializer):
    new_labels = serializers.IntegerField()
    counts_by_label = serializers.DictField(child=serializers.IntegerField())
    threshold = serializers.IntegerField()
    champion_agreement = serializers.DictField()
    last_training_at = serializers.DateTimeField(allow_null=True)
    last_trigger = serializers.DictField(allow_null=True)
