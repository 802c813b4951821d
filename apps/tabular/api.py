"""/api/v1/tabular: risk predictions from the champion of a tabular model (physicians and
admins), and the lab for admins (datasets, experiments, promotion, rollback). Thin views: the
rules are in services.py, the reads in selectors.py; refusals are TabularError."""

from __future__ import annotations

from pathlib import Path

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import AdminApi
from apps.tabular import selectors, services
from apps.tabular.serializers import (
    PREDICT_REQUEST,
    TabularDatasetDetailSerializer,
    TabularDatasetSerializer,
    TabularDatasetUploadSerializer,
    TabularExperimentDetailSerializer,
    TabularExperimentSerializer,
    TabularExperimentStartSerializer,
    TabularModelEntrySerializer,
    TabularPredictionSerializer,
    TabularPromoteSerializer,
    TabularPromotionSerializer,
)

LIST_LIMIT = 100


class IsClinicalStaff(BasePermission):
    message = "Only physicians and administrators use tabular risk models."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_clinical_staff)


class ClinicalApi(APIView):
    permission_classes = [IsAuthenticated, IsClinicalStaff]


class ModelListApi(ClinicalApi):
    @extend_schema(
        responses=TabularModelEntrySerializer(many=True),
        summary="Tabular models: champion version, algorithm, test metrics, input schema",
    )
    def get(self, request):
        return Response(TabularModelEntrySerializer(selectors.list_models(), many=True).data)


class PredictApi(ClinicalApi):
    @extend_schema(
        request={"application/json": PREDICT_REQUEST},
        responses={
            200: TabularPredictionSerializer,
            400: OpenApiResponse(description="`invalid_request`: details.field names the column (missing, "
                                 "out of range, wrong type), details.errors lists every problem"),
            404: OpenApiResponse(description="no such model, or it has no champion"),
        },
        summary="Risk prediction from the model's champion (audited)",
    )  # fmt: skip
    def post(self, request, name: str):
        experiment = selectors.get_champion(name)
        out = services.predict(actor=request.user, experiment=experiment, rows=request.data)
        return Response({"model": name, "version": experiment.model_version, **out})


class DatasetListApi(AdminApi):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=TabularDatasetSerializer(many=True), summary="Uploaded tabular datasets (newest first)")
    def get(self, request):
        return Response(TabularDatasetSerializer(selectors.list_datasets()[:LIST_LIMIT], many=True).data)

    @extend_schema(
        request={"multipart/form-data": TabularDatasetUploadSerializer},
        responses={201: TabularDatasetDetailSerializer},
        summary="Upload a CSV (profiled; nothing is stored when it is refused)",
    )
    def post(self, request):
        body = TabularDatasetUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = services.upload_dataset(
            actor=request.user,
            name=body.validated_data["name"] or Path(body.validated_data["file"].name).stem,
            data=body.validated_data["file"],
            target=body.validated_data["target"] or None,
        )
        return Response(TabularDatasetDetailSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(AdminApi):
    @extend_schema(responses=TabularDatasetDetailSerializer, summary="A dataset with its profile")
    def get(self, request, pk: int):
        return Response(TabularDatasetDetailSerializer(selectors.get_dataset(pk)).data)


class ExperimentListApi(AdminApi):
    @extend_schema(responses=TabularExperimentSerializer(many=True), summary="Tabular experiments (newest first)")
    def get(self, request):
        return Response(TabularExperimentSerializer(selectors.list_experiments()[:LIST_LIMIT], many=True).data)

    @extend_schema(
        request=TabularExperimentStartSerializer,
        responses={202: TabularExperimentDetailSerializer},
        summary="Start an experiment on the training queue",
    )
    def post(self, request):
        body = TabularExperimentStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = selectors.get_dataset(body.validated_data["dataset"])
        experiment = services.start_experiment(
            actor=request.user, dataset=dataset, config=body.validated_data["config"]
        )
        return Response(TabularExperimentDetailSerializer(experiment).data, status=status.HTTP_202_ACCEPTED)


class ExperimentDetailApi(AdminApi):
    @extend_schema(
        responses=TabularExperimentDetailSerializer,
        summary="An experiment: status, live progress, results, gates, MLflow run",
    )
    def get(self, request, pk: int):
        return Response(TabularExperimentDetailSerializer(selectors.get_experiment(pk)).data)


class PromoteApi(AdminApi):
    @extend_schema(
        request=TabularPromoteSerializer,
        responses={
            200: TabularPromotionSerializer,
            409: OpenApiResponse(description="`gates_failed` (details.failed_gates), `model_not_ready`, "
                                 "`already_champion`"),
        },
        summary="Make the experiment's pipeline the champion of its model (through the gates)",
    )  # fmt: skip
    def post(self, request, pk: int):
        body = TabularPromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        promotion = services.promote_experiment(
            actor=request.user,
            experiment=selectors.get_experiment(pk),
            override_reason=body.validated_data["override_reason"],
        )
        return Response(TabularPromotionSerializer(promotion).data)


class RollbackApi(AdminApi):
    @extend_schema(
        request=None,
        responses={200: TabularPromotionSerializer, 409: OpenApiResponse(description="`nothing_to_roll_back`")},
        summary="Give the champion back to the previous one",
    )
    def post(self, request, name: str):
        return Response(TabularPromotionSerializer(services.rollback_model(actor=request.user, name=name)).data)
