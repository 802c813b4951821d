"""/api/v1 model operations (admins only): registry, promotion, rollback, training runs."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.accounts.permissions import AdminApi
from apps.modelops import selectors, services
from apps.modelops.models import ModelVersion, Promotion, TrainingRun
from apps.modelops.serializers import (
    ModelVersionSerializer,
    PromoteSerializer,
    PromotionSerializer,
    RetrainingQueueSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
)


def _promotion_body(promotion: Promotion) -> dict:
    return {
        "action": promotion.action,
        "champion": str(promotion.version),
        "previous": str(promotion.previous) if promotion.previous else None,
        "gates": promotion.gates,
        "override_reason": promotion.override_reason,
    }


class ModelListApi(AdminApi):
    @extend_schema(responses=ModelVersionSerializer(many=True), summary="Model versions with metrics and alias")
    def get(self, request):
        return Response(ModelVersionSerializer(selectors.list_versions(), many=True).data)


class PromoteApi(AdminApi):
    @extend_schema(
        request=PromoteSerializer,
        responses={
            200: PromotionSerializer,
            409: OpenApiResponse(description="failed quality gates: error.details.failed_gates"),
        },
        summary="Move the champion alias here",
    )
    def post(self, request, name: str, version: str):
        target = get_object_or_404(ModelVersion, registered_name=name, version=version)
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        promotion = services.promote_version(
            target, actor=request.user, override_reason=body.validated_data["override_reason"]
        )
        return Response(_promotion_body(promotion))


class RollbackApi(AdminApi):
    @extend_schema(
        request=None,
        responses={200: PromotionSerializer, 409: OpenApiResponse(description="no previous champion")},
        summary="Give the champion alias back to the previous champion",
    )
    def post(self, request, name: str):
        promotion = services.rollback_champion(registered_name=name, actor=request.user)
        return Response(_promotion_body(promotion))


class TrainingRunCreateApi(AdminApi):
    @extend_schema(
        request=TrainingRunCreateSerializer,
        responses={202: TrainingRunSerializer},
        summary="Start a training run on the training queue",
    )
    def post(self, request):
        body = TrainingRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.start_training_run(**body.validated_data, actor=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(AdminApi):
    @extend_schema(responses=TrainingRunSerializer, summary="A training run: status, progress, metrics, MLflow run id")
    def get(self, request, run_id: int):
        return Response(TrainingRunSerializer(get_object_or_404(TrainingRun, pk=run_id)).data)


class RetrainingQueueApi(AdminApi):
    @extend_schema(responses=RetrainingQueueSerializer, summary="New labels by class, threshold, last trigger")
    def get(self, request):
        return Response(RetrainingQueueSerializer(selectors.retraining_queue()).data)
