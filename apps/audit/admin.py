"""The audit trail in the Django admin, and the mixins every admin of patient data uses:
each page of it is audited (`AuditedAdminMixin`) and it is read-only (`PatientDataAdmin`)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBase

from apps.audit.middleware import outcome_for_response
from apps.audit.models import AuditEvent, Outcome
from apps.audit.services import client_ip, record_event


class AuditedAdminMixin:
    """Records one AuditEvent per admin page of the model: `admin.list` (the ids of the rows shown
    in `detail.ids`), `admin.view` (an object's page, GET or POST), `admin.history`, `admin.add`,
    `admin.delete`; the outcome is what happened (a refusal raised inside the admin is denied, and
    so is the admin's redirect away from an object that does not exist)."""

    def changelist_view(self, request, extra_context=None):
        return self._audited(
            request, "admin.list", "", lambda: super(AuditedAdminMixin, self).changelist_view(request, extra_context)
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._audited(
            request,
            "admin.view" if object_id else "admin.add",
            object_id or "",
            lambda: super(AuditedAdminMixin, self).changeform_view(request, object_id, form_url, extra_context),
        )

    def history_view(self, request, object_id, extra_context=None):
        return self._audited(
            request,
            "admin.history",
            object_id,
            lambda: super(AuditedAdminMixin, self).history_view(request, object_id, extra_context),
        )

    def delete_view(self, request, object_id, extra_context=None):
        return self._audited(
            request,
            "admin.delete",
            object_id,
            lambda: super(AuditedAdminMixin, self).delete_view(request, object_id, extra_context),
        )

    def _audited(self, request, action: str, object_id: str, view: Callable[[], HttpResponseBase]) -> HttpResponseBase:
        object_id = unquote(str(object_id)) if object_id else ""
        try:
            response = view()
        except PermissionDenied:
            self._record(request, action, object_id, Outcome.DENIED, {"status": 403, "reason": "forbidden"})
            raise
        except Http404:
            self._record(request, action, object_id, Outcome.DENIED, {"status": 404, "reason": "not_found"})
            raise
        outcome, reason = outcome_for_response(request, response)
        if 300 <= response.status_code < 400 and outcome == Outcome.ALLOWED:
            # Read-only pages redirect only away from an object that does not exist, or from a
            # list's malformed filter (?e=1).
            outcome, reason = (Outcome.DENIED, "not_found") if object_id else (Outcome.INVALID, "invalid_request")
        detail = {"status": response.status_code, **({"reason": reason} if reason else {})}
        if action == "admin.list":
            ids = _shown_ids(response)
            detail.update(ids=ids, count=len(ids), query=request.GET.urlencode())
        self._record(request, action, object_id, outcome, detail)
        return response

    def _record(self, request, action: str, object_id: str, outcome: str, detail: dict) -> None:
        record_event(
            actor=request.user,
            action=action,
            object_type=self.model._meta.label_lower,
            object_id=object_id,
            ip_address=client_ip(request),
            outcome=outcome,
            detail={"method": request.method, "path": request.path, **detail},
        )


def _shown_ids(response) -> list[str]:
    """The primary keys of the rows a change list page shows (its page of results)."""
    changelist = (getattr(response, "context_data", None) or {}).get("cl")
    if changelist is None:
        return []
    # result_list is the page's queryset: iterating caches it, so the template reuses these rows.
    return [str(obj.pk) for obj in changelist.result_list]


class PatientDataAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Patient data in the admin: readable, never added, changed or deleted here (the services do
    that, keeping files, training samples and the trail consistent), and every page audited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(PatientDataAdmin):
    """Read-only: the trail can be searched, never edited; reading it is on record too."""

    list_display = (
        "at",
        "actor_username",
        "action",
        "object_type",
        "object_id",
        "patient_username",
        "outcome",
        "ip_address",
    )
    list_filter = ("action", "outcome", "object_type")
    search_fields = ("actor_username", "patient_username", "object_id", "action")
