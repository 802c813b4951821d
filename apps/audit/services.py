"""The one writer of audit events."""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.audit.models import AuditEvent, Outcome


def client_ip(request) -> str | None:
    """The client's address. Behind a proxy, set BEHIND_PROXY and let the proxy own X-Forwarded-For."""
    return request.META.get("REMOTE_ADDR") or None


def record_event(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    ip_address: str | None = None,
    outcome: str = Outcome.ALLOWED,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_username=actor.get_username() if authenticated else "",
        action=action,
        object_type=object_type,
        object_id=object_id,
        ip_address=ip_address,
        outcome=outcome,
        detail=detail or {},
    )
