"""The audit trail for administrators (/audit/): search, pages, CSV export. Reading the trail is
itself audited (`audit.read`, `audit.export`, with the filters used), refusals included."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django import forms
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.accounts.decorators import role_required
from apps.accounts.models import Role
from apps.audit import selectors
from apps.audit.middleware import add_audit_detail, audits_patient_data
from apps.audit.models import Outcome

PAGE_SIZE = 50
CSV_COLUMNS = ("at", "actor", "action", "object_type", "object_id", "patient", "outcome", "ip_address", "detail")

audit_admin_required = role_required(lambda user: user.role == Role.ADMIN, "The audit trail is for administrators.")


class AuditFilterForm(forms.Form):
    patient = forms.CharField(required=False, max_length=150, help_text="patient's username")
    actor = forms.CharField(required=False, max_length=150, help_text="username of who acted")
    action = forms.CharField(required=False, max_length=64, help_text="e.g. study.read, or study. for all")
    outcome = forms.ChoiceField(required=False, choices=[("", "any")] + list(Outcome.choices))
    object_id = forms.CharField(required=False, max_length=64)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _invalid_filters(request, form: AuditFilterForm):
    """400 with the form's errors (also in the audit event), for the page and the export alike."""
    add_audit_detail(request, errors=form.errors.get_json_data())
    return render(request, "audit/events.html", {"form": form, "page": None}, status=400)


def _filters(request) -> tuple[AuditFilterForm, selectors.AuditFilters | None]:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, selectors.AuditFilters(**{k: v for k, v in form.cleaned_data.items() if v})


@audit_admin_required
@require_GET
@audits_patient_data("audit.auditevent", "audit.read")
def audit_log(request):
    form, filters = _filters(request)
    if filters is None:
        return _invalid_filters(request, form)
    page = Paginator(selectors.search_events(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    add_audit_detail(request, filters=filters.given(), page=page.number, shown=len(page.object_list))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/events.html", {"form": form, "page": page, "query": query.urlencode()})


@audit_admin_required
@require_GET
@audits_patient_data("audit.auditevent", "audit.export")
def audit_export(request):
    """The filtered events as CSV, streamed (the trail may hold millions of rows)."""
    form, filters = _filters(request)
    if filters is None:
        return _invalid_filters(request, form)
    events = selectors.search_events(filters)
    add_audit_detail(request, filters=filters.given(), rows=events.count())
    response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(events) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in events.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                _cell(v)
                for v in (
                    e.at.isoformat(),
                    e.actor_username,
                    e.action,
                    e.object_type,
                    e.object_id,
                    e.patient_username,
                    e.outcome,
                    e.ip_address or "",
                    json.dumps(e.detail, sort_keys=True),
                )
            ]
        )


def _cell(value: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: keep it text (OWASP CSV injection).
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
