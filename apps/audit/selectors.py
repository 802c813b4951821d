from __future__ import annotations

from django.db.models import QuerySet

from apps.audit.models import AuditEvent


def events_for_object(object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id))
