"""/api/v1/studies/<id>/explanation: read it (owner or clinical staff), edit it (physicians);
/api/v1/explainer/finetune-runs: the LoRA fine-tune job on the edits (admins)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import AdminApi
from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.explanations import selectors, services
from apps.explanations.models import ExplainerFinetuneRun


class ExplanationEditSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.MAX_EDIT_CHARS, trim_whitespace=True)


class ExplanationPayloadSerializer(serializers.Serializer):
    """selectors.explanation_payload: the provenance fields are present for clinical staff only."""

    study_id = serializers.UUIDField()
    text = serializers.CharField()
    engine = serializers.ChoiceField(choices=sorted(selectors.ENGINE_LABELS))
    engine_display = serializers.CharField()
    created_at = serializers.DateTimeField()
    technical_summary = serializers.CharField(required=False)
    model_name = serializers.CharField(required=False)
    prompt_hash = serializers.CharField(required=False)
    generation_ms = serializers.FloatField(required=False, allow_null=True)
    validation = serializers.DictField(required=False)
    edits = serializers.IntegerField(required=False)


@audits_patient_data("studies.study", "study.explanation")
class StudyExplanationApi(APIView):
    @extend_schema(responses=ExplanationPayloadSerializer, summary="The study's plain-language explanation")
    def get(self, request, study_id):
        study, explanation = selectors.get_explanation_for_user(request.user, study_id)
        if explanation is None:
            raise services.ExplanationError(
                "explanation_not_ready", "The explanation is not ready yet.", details={"status": study.status}
            )
        return Response(selectors.explanation_payload(explanation, request.user))

    @extend_schema(
        request=ExplanationEditSerializer,
        responses=ExplanationPayloadSerializer,
        summary="Edit the explanation (physicians); collected for the LoRA fine-tune",
    )
    def put(self, request, study_id):
        if not request.user.is_clinical_staff:
            raise PermissionDenied
        study, _ = selectors.get_explanation_for_user(request.user, study_id)
        body = ExplanationEditSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        edit = services.edit_explanation(
            study=study, editor=request.user, text=body.validated_data["text"], ip_address=client_ip(request)
        )
        return Response(selectors.explanation_payload(edit.explanation, request.user))


class FinetuneRunCreateSerializer(serializers.Serializer):
    steps = serializers.IntegerField(min_value=1, max_value=5000, default=20)


class FinetuneRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExplainerFinetuneRun
        fields = [
            "id",
            "status",
            "steps",
            "examples",
            "checkpoint_dir",
            "mlflow_run_id",
            "seconds",
            "error",
            "created_at",
            "finished_at",
        ]


class FinetuneRunCreateApi(AdminApi):
    @extend_schema(
        request=FinetuneRunCreateSerializer,
        responses={202: FinetuneRunSerializer},
        summary="Start a LoRA fine-tune of the explanation model on physicians' edits (training queue)",
    )
    def post(self, request):
        body = FinetuneRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.start_explainer_finetune(actor=request.user, steps=body.validated_data["steps"])
        return Response(FinetuneRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class FinetuneRunDetailApi(AdminApi):
    @extend_schema(responses=FinetuneRunSerializer, summary="An explainer fine-tune: status, result, MLflow run id")
    def get(self, request, run_id: int):
        return Response(FinetuneRunSerializer(get_object_or_404(ExplainerFinetuneRun, pk=run_id)).data)
