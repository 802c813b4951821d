"""/api/v1/studies: the patient flow for apps. Same services and selectors as the web views."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.studies import selectors, services
from apps.studies.serializers import StudySerializer, StudyUploadSerializer
from apps.studies.views import intake_error_status, png_response
from deepmed_web.api import ApiError

PNG_RESPONSE = {(200, "image/png"): OpenApiTypes.BINARY}


def _render(result, request) -> dict:
    return StudySerializer(result, context={"request": request}).data


class StudyListCreateApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=StudySerializer(many=True), summary="My studies, newest first (paginated)")
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.studies_for_owner(request.user), request, view=self)
        return paginator.get_paginated_response([_render(selectors.study_result(s), request) for s in page])

    @extend_schema(
        request={"multipart/form-data": StudyUploadSerializer},
        responses={
            201: StudySerializer,
            200: OpenApiResponse(StudySerializer, description="the same image was uploaded before: that study"),
        },
        summary="Upload a chest X-ray (needs the current disclaimer accepted)",
    )
    def post(self, request):
        if not request.user.is_patient:
            raise PermissionDenied("Only patients upload studies.")
        try:
            services.ensure_can_upload(request.user)  # before the body: no consent, no look at the file
            body = StudyUploadSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            study = services.create_study_from_upload(
                owner=request.user,
                upload=body.validated_data["image"],
                patient_age=body.validated_data.get("age"),
                symptoms=body.validated_data.get("symptoms") or "",
                ip_address=client_ip(request),
            )
        except services.StudyIntakeError as exc:
            details = {"reason": exc.reason} if exc.reason and exc.reason != exc.code else None
            raise ApiError(exc.code, exc.message, http_status=intake_error_status(exc.code), details=details) from exc
        http = status.HTTP_200_OK if study.is_duplicate_upload else status.HTTP_201_CREATED
        return Response(_render(selectors.study_result(study), request), status=http)


@audits_patient_data("studies.study", "study.access")  # GET reads, DELETE deletes: the method is in the detail
class StudyDetailApi(APIView):
    @extend_schema(responses=StudySerializer, summary="One study with its result, explanation and review")
    def get(self, request, study_id):
        return Response(_render(selectors.study_result(selectors.get_study_for_user(request.user, study_id)), request))

    @extend_schema(responses={204: None}, summary="Delete a study, its image and derived files")
    def delete(self, request, study_id):
        study = selectors.get_own_study(request.user, study_id)
        services.delete_study(study, actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AcceptAnything(BaseContentNegotiation):
    """Image downloads answer any Accept header (e.g. `image/png`): the PNG itself, or an
    error in the JSON envelope, instead of DRF's 406."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PngDownloadApi(APIView):
    content_negotiation_class = AcceptAnything


@audits_patient_data("studies.study", "study.image")
class StudyImageApi(PngDownloadApi):
    @extend_schema(responses=PNG_RESPONSE, summary="The de-identified image (PNG)")
    def get(self, request, study_id):
        return png_response(selectors.get_study_for_user(request.user, study_id).image)


@audits_patient_data("studies.study", "study.heatmap")
class StudyHeatmapApi(PngDownloadApi):
    @extend_schema(responses=PNG_RESPONSE, summary="The heat-map overlay (transparent PNG)")
    def get(self, request, study_id):
        prediction = selectors.visible_prediction(selectors.get_study_for_user(request.user, study_id))
        return png_response(prediction.heatmap if prediction else None)
