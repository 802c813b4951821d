"""/api/v1/studies: the patient flow for apps. Same services and selectors as the web views."""

from __future__ import annotations

import hashlib
import json

from django.utils.http import parse_etags
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.studies import selectors, services
from apps.studies.responses import png_response
from apps.studies.serializers import (
    StudyListQuerySerializer,
    StudyPageSerializer,
    StudySerializer,
    StudyUploadSerializer,
)
from deepmed_web.api import PAGE_PARAMETERS, Pagination
from deepmed_web.throttles import ThrottleUploadsOnly

PNG_RESPONSE = {(200, "image/png"): OpenApiTypes.BINARY}


def _render(result, request) -> dict:
    return StudySerializer(result, context={"request": request}).data


def _etag(body: dict) -> str:
    """A strong validator of exactly what the client would receive."""
    return f'"{hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]}"'


class StudyListCreateApi(ThrottleUploadsOnly, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="v1_studies_list",
        parameters=[StudyListQuerySerializer, *PAGE_PARAMETERS],
        responses=StudyPageSerializer,
        summary="My studies, newest first (paginated: page, page_size; filters: status, dates)",
    )
    def get(self, request):
        query = StudyListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = Pagination()
        studies = selectors.studies_for_owner(request.user, **query.validated_data)
        page = paginator.paginate_queryset(studies, request, view=self)
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
        if study.is_duplicate_upload:  # an earlier study: its result so far
            return Response(_render(selectors.study_result(study), request), status=status.HTTP_200_OK)
        return Response(_render(selectors.new_study_result(study), request), status=status.HTTP_201_CREATED)


@audits_patient_data("studies.study", "study.access")  # GET reads, DELETE deletes: the method is in the detail
class StudyDetailApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="the ETag of the copy the app holds: 304 while it is current",
            )
        ],
        responses={200: StudySerializer, 304: OpenApiResponse(description="not modified since that ETag")},
        summary="One study with its result, explanation and review (ETag for cheap polling)",
    )
    def get(self, request, study_id):
        body = _render(selectors.study_result(selectors.get_study_for_user(request.user, study_id)), request)
        etag = _etag(body)
        held = parse_etags(request.headers.get("If-None-Match", ""))
        response = Response(status=status.HTTP_304_NOT_MODIFIED) if etag in held or "*" in held else Response(body)
        response["ETag"] = etag
        # Patient data: kept by no HTTP cache (the app keeps its copy and its ETag itself).
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(responses={204: None}, summary="Delete a study, its image and derived files (its patient only)")
    def delete(self, request, study_id):
        if request.user.is_clinical_staff:
            selectors.get_study_for_user(request.user, study_id)  # 404 for an unknown id, as for everyone
            raise PermissionDenied("Only the patient who uploaded a study can delete it.")
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
