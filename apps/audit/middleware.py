"""Audits every request to a view that reads patient data.

A view opts in with `@audits_patient_data("studies.study", "study.read")`; the object
id comes from the URL (kwarg `study_id` or `pk`). The outcome follows the response:
2xx/3xx allowed, 401/403/404 denied, 5xx error — so failed id guessing is on record too.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.audit.models import Outcome
from apps.audit.services import client_ip, record_event

_AUDIT_ATTR = "_deepmed_audit"


def audits_patient_data(object_type: str, action: str, id_kwarg: str = "study_id") -> Callable:
    def mark(view):
        setattr(view, _AUDIT_ATTR, (object_type, action, id_kwarg))
        return view

    return mark


def _outcome(status_code: int) -> str:
    if status_code >= 500:
        return Outcome.ERROR
    if status_code in (401, 403, 404):
        return Outcome.DENIED
    return Outcome.ALLOWED


class PatientDataAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        audit = getattr(request, "_deepmed_audit_target", None)
        if audit is not None:
            object_type, action, object_id = audit
            record_event(
                actor=getattr(request, "user", None),
                action=action,
                object_type=object_type,
                object_id=object_id,
                ip_address=client_ip(request),
                outcome=_outcome(response.status_code),
                detail={"method": request.method, "path": request.path, "status": response.status_code},
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
