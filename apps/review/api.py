"""/api/v1/review: the physician flow for apps. Same services and selectors as the web views."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import client_ip
from apps.review import selectors, services
from apps.review.serializers import (
    IdentifyingTextSerializer,
    IdentifyingTextStateSerializer,
    ReviewClaimSerializer,
    ReviewCreateSerializer,
    ReviewVersionSerializer,
    ReviewWorklistSerializer,
    WorklistQuerySerializer,
)
from apps.studies import services as study_services


class IsClinicalStaff(BasePermission):
    message = "Only physicians and administrators review studies."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_clinical_staff)


class ReviewApi(APIView):
    permission_classes = [IsAuthenticated, IsClinicalStaff]


class WorklistApi(ReviewApi):
    @extend_schema(
        parameters=[WorklistQuerySerializer],
        responses=ReviewWorklistSerializer,
        summary="Studies awaiting review, most urgent first (severity, uncertainty, age)",
    )
    def get(self, request):
        query = WorklistQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = selectors.WorklistFilters(**{k: v for k, v in query.validated_data.items() if v})
        return Response(ReviewWorklistSerializer(selectors.worklist(filters)).data)


class ClaimApi(ReviewApi):
    @extend_schema(
        request=None,
        responses={200: ReviewClaimSerializer, 409: OpenApiResponse(description="claimed by another")},
        summary="Claim a study for review (locks it for DEEPMED_REVIEW_CLAIM_MINUTES)",
    )
    def post(self, request, study_id):
        claim = services.claim_study(study_id, physician=request.user, ip_address=client_ip(request))
        return Response(ReviewClaimSerializer(claim).data)


class ReleaseApi(ReviewApi):
    @extend_schema(request=None, responses={204: None}, summary="Release one's claim on a study")
    def post(self, request, study_id):
        services.release_study(study_id, physician=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewCreateApi(ReviewApi):
    @extend_schema(
        request=ReviewCreateSerializer,
        responses={201: ReviewVersionSerializer},
        summary="Save a review: confirm, correct or not assessable (a new version if already reviewed)",
    )
    def post(self, request, study_id):
        body = ReviewCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = services.save_review(
            study_id, physician=request.user, ip_address=client_ip(request), **body.validated_data
        )
        return Response(ReviewVersionSerializer(review).data, status=status.HTTP_201_CREATED)


class IdentifyingTextApi(ReviewApi):
    @extend_schema(
        request=IdentifyingTextSerializer,
        responses={200: IdentifyingTextStateSerializer},
        summary="Flag (or clear) identifying text visible in a study's image: a flagged image never trains",
    )
    def post(self, request, study_id):
        body = IdentifyingTextSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        study, excluded = study_services.set_identifying_text(
            study_id, flagged=body.validated_data["flagged"], actor=request.user, ip_address=client_ip(request)
        )
        return Response(
            IdentifyingTextStateSerializer(
                {
                    "study_id": study.pk,
                    "flagged": study.has_identifying_text,
                    "identifying_text": study.identifying_text,
                    "samples_excluded": excluded,
                }
            ).data
        )
