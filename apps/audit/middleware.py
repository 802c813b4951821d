"""Audits every request to a view that reads patient data.

A view opts in with `@audits_patient_data("studies.study", "study.read")`; the object
id comes from the URL (kwarg `study_id` or `pk`). The outcome records what happened
(`outcome_for_response`), so failed id guessing is on record too:

- allowed: 2xx (served), 304 (the client's copy is current: a read), a redirect after a completed
  action (e.g. deleted, then back to the list);
- denied: a redirect to a log-in page (anonymous), 401, 403, 404, 429;
- invalid: 405 and other 4xx (refused as malformed before any data was read);
- error: 5xx.
A view that shows the data with another status (the review page re-rendered with a form error,
400/403/409) says so with `mark_patient_data_shown(request)`: allowed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from urllib.parse import urlparse

from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse

from apps.audit.models import Outcome
from apps.audit.services import client_ip, record_event

_AUDIT_ATTR = "_deepmed_audit"
_SHOWN_ATTR = "_deepmed_patient_data_shown"
_DETAIL_ATTR = "_deepmed_audit_detail"
_DENIED_REASONS = {401: "not_authenticated", 403: "forbidden", 404: "not_found", 429: "throttled"}


def audits_patient_data(object_type: str, action: str, id_kwarg: str = "study_id") -> Callable:
    def mark(view):
        setattr(view, _AUDIT_ATTR, (object_type, action, id_kwarg))
        return view

    return mark


def mark_patient_data_shown(request) -> None:
    """The response shows the patient data whatever its status (see the module docstring)."""
    setattr(request, _SHOWN_ATTR, True)


def add_audit_detail(request, **detail) -> None:
    """Facts the view adds to its request's audit event (e.g. the filters of a search)."""
    setattr(request, _DETAIL_ATTR, {**getattr(request, _DETAIL_ATTR, {}), **detail})


def _login_paths() -> set[str]:
    paths = {resolve_url(settings.LOGIN_URL)}
    with contextlib.suppress(NoReverseMatch):
        paths.add(reverse("admin:login"))
    return paths


def outcome_for_response(request, response) -> tuple[str, str]:
    """(outcome, reason) of a request to patient data, from what its response did."""
    status = response.status_code
    if getattr(request, _SHOWN_ATTR, False) and status < 500:
        return Outcome.ALLOWED, "" if status < 300 else "shown_with_status"
    if status >= 500:
        return Outcome.ERROR, "server_error"
    if status == 304:
        return Outcome.ALLOWED, "not_modified"
    if 300 <= status < 400:
        if urlparse(response.get("Location", "")).path in _login_paths():
            return Outcome.DENIED, "login_required"
        return Outcome.ALLOWED, "redirect"
    if status in _DENIED_REASONS:
        return Outcome.DENIED, _DENIED_REASONS[status]
    if status == 405:
        return Outcome.INVALID, "method_not_allowed"
    if status >= 400:
        return Outcome.INVALID, "invalid_request"
    return Outcome.ALLOWED, ""


class PatientDataAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        audit = getattr(request, "_deepmed_audit_target", None)
        if audit is not None:
            object_type, action, object_id = audit
            outcome, reason = outcome_for_response(request, response)
            detail = {
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                **getattr(request, _DETAIL_ATTR, {}),
            }
            record_event(
                actor=getattr(request, "user", None),
                action=action,
                object_type=object_type,
                object_id=object_id,
                ip_address=client_ip(request),
                outcome=outcome,
                detail={**detail, "reason": reason} if reason else detail,
            )
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        target = getattr(view_func, _AUDIT_ATTR, None)
        if target is None:
            target = getattr(getattr(view_func, "cls", None), _AUDIT_ATTR, None)  # DRF views
        if target is not None:
            object_type, action, id_kwarg = target
            request._deepmed_audit_target = (object_type, action, str(view_kwargs.get(id_kwarg, "")))
        return None
