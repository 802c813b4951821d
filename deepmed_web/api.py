"""Conventions shared by every /api/v1 endpoint.

Errors always have one shape: {"error": {"code": "...", "message": "...", "details": {...}}}
with stable codes (documented in README). Services (and views, for view-level refusals) raise
`apps.core.errors.ApplicationError` subclasses, which carry their code, status and details;
views do not catch them: this handler maps them, and DRF's own exceptions, to the envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback
from rest_framework_simplejwt.exceptions import InvalidToken

from apps.core.errors import ApplicationError
from deepmed_web.middleware import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


_CODES_BY_EXCEPTION: list[tuple[type[Exception], str]] = [
    (InvalidToken, "token_not_valid"),  # expired, malformed, revoked: the app must log in again
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
    (exceptions.ValidationError, "invalid_request"),
    (exceptions.ParseError, "invalid_request"),
]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def application_error_response(exc: ApplicationError) -> Response:
    """A service's refusal in the envelope, with its own status, code and details."""
    response = Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if exc.http_status == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = RETRY_AFTER_SECONDS  # about the server's load, not the request
    return response


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        set_rollback()  # as DRF does for its own exceptions under ATOMIC_REQUESTS
        return application_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DATABASE_UNAVAILABLE):
        # The database went away mid-request (failover, dropped connection): a clean, retryable
        # error instead of a 500; Django reconnects on the next request (CONN_HEALTH_CHECKS).
        logger.error("database unavailable during %s", getattr(context.get("request"), "path", "?"), exc_info=exc)
        response = Response(
            error_body("service_unavailable", "The service is briefly unavailable. Please try again."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: a 500, logged by Django
    code = next((c for cls, c in _CODES_BY_EXCEPTION if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(code, "The request is not valid.", {"fields": exc.detail})
    else:
        detail = exc.detail
        if isinstance(detail, dict):  # simplejwt: {"detail": ..., "code": ..., "messages": [...]}
            detail = detail.get("detail", "")
        detail = str(detail)
        response.data = error_body(getattr(exc, "default_code", code) if code == "error" else code, detail)
    return response


PAGE_PARAMETERS = [
    OpenApiParameter("page", int, required=False, description="page number, from 1"),
    OpenApiParameter("page_size", int, required=False, description="items per page (default 20, at most 100)"),
]


class Pagination(PageNumberPagination):
    """?page=N&page_size=M (at most 100): {count, next, previous, results}."""

    page_size_query_param = "page_size"
    max_page_size = 100


# --- the error shape in the OpenAPI schema ------------------------------------------------

ERROR_ENVELOPE_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable machine-readable code, e.g. consent_required"},
                "message": {"type": "string", "description": "for people"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
ERRORS_ANY_OPERATION = {
    "400": "invalid request (`details.fields` per field)",
    "401": "not authenticated, or the token is not valid (`token_not_valid`)",
    "403": "not allowed for this role or user",
    "404": "not found (also another patient's study: no probing)",
    "429": "rate limited (`throttled`, `account_locked`); see Retry-After",
    "503": "a backing service is briefly unavailable (`service_unavailable`), or every image decoder is busy "
    "(`server_busy`, uploads); retry after Retry-After",
}
ERRORS_WITH_A_BODY = {
    "409": "conflicts with the current state (e.g. `consent_version_mismatch`, `study_claimed`)",
    "413": "the upload is too large (`file_too_large`)",
    "415": "unsupported content type for this operation",
}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation documents the error envelope for
    the statuses it may answer (operation-specific descriptions are kept)."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE_SCHEMA
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            errors = dict(ERRORS_ANY_OPERATION)
            if method in ("post", "put", "patch"):
                errors.update(ERRORS_WITH_A_BODY)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                response = responses.setdefault(code, {"description": description})
                response.setdefault("content", {"application/json": {"schema": ref}})
    return result
