from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from django.db.models import QuerySet

from apps.audit.models import AuditEvent


def events_for_object(object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id))


@dataclass(frozen=True)
class AuditFilters:
    patient: str = ""  # username of the patient whose data it is (exact, any case)
    actor: str = ""  # username of who acted (exact, any case)
    action: str = ""  # an action, or a prefix of one: "study." finds study.read, study.image...
    outcome: str = ""  # one of apps.audit.models.Outcome
    object_id: str = ""
    date_from: date | None = None  # whole days, inclusive
    date_to: date | None = None

    def given(self) -> dict[str, str]:
        """The filters set, as text (for the trail of who searched what, and for links)."""
        return {k: str(v) for k, v in asdict(self).items() if v}


def search_events(filters: AuditFilters = AuditFilters()) -> QuerySet[AuditEvent]:
    """Events matching every filter given, newest first."""
    events = AuditEvent.objects.all()
    if filters.patient:
        events = events.filter(patient_username__iexact=filters.patient)
    if filters.actor:
        events = events.filter(actor_username__iexact=filters.actor)
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.object_id:
        events = events.filter(object_id=filters.object_id)
    if filters.date_from:
        events = events.filter(at__date__gte=filters.date_from)
    if filters.date_to:
        events = events.filter(at__date__lte=filters.date_to)
    return events.order_by("-at", "-id")
