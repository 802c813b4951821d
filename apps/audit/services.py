"""The one writer of audit events (and the retention policy, the one way they leave)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils import timezone

from apps.audit.models import AuditEvent, Outcome

logger = logging.getLogger(__name__)

FIND_PATIENT: Any = object()  # record_event's default: find the patient from the object
# Attribute paths from an audited object to the patient it belongs to: a study's owner, and the
# study's owner for what hangs off a study (prediction, review, claim, sample, explanation edit);
# consent records name their user.
_PATIENT_PATHS = (("owner",), ("study", "owner"), ("explanation", "study", "owner"), ("user",))


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
    patient=FIND_PATIENT,
) -> AuditEvent:
    """Append one event. `patient` (whose data it is about) is found from `obj`, or from
    `object_type`/`object_id`, unless given (None: about no patient)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    if patient is FIND_PATIENT:
        patient = patient_of(obj, object_type=object_type, object_id=object_id)
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
        patient=patient,
        patient_username=patient.get_username() if patient is not None else "",
    )


def patient_of(obj: models.Model | None = None, *, object_type: str = "", object_id: str = ""):
    """The patient whose data `obj` (or the object named by type and id) is, or None."""
    if obj is None and object_type and object_id:
        obj = _load(object_type, object_id)
    if obj is None:
        return None
    if getattr(obj, "is_patient", False):  # a patient's own account
        return obj
    for path in _PATIENT_PATHS:
        target = obj
        for name in path:
            target = getattr(target, name, None)
            if target is None:
                break
        if target is not None and getattr(target, "is_patient", False):
            return target
    return None


def _load(object_type: str, object_id: str) -> models.Model | None:
    from django.apps import apps

    try:
        model = apps.get_model(object_type)
        return model._default_manager.select_related(*_patient_joins(model)).filter(pk=object_id).first()
    except (LookupError, ValueError, ValidationError):  # not a model ("modelops.registry"), a malformed id
        return None


@cache
def _patient_joins(model: type[models.Model]) -> tuple[str, ...]:
    """The _PATIENT_PATHS `model` has as foreign keys, for select_related: the object and its
    patient in one query (a study and its owner: every audited read of a study named by its id
    in the URL, such as the API's detail, image and heat-map, made two)."""
    joins = []
    for path in _PATIENT_PATHS:
        current = model
        for name in path:
            try:
                field = current._meta.get_field(name)
            except FieldDoesNotExist:
                break
            # forward foreign keys only (a study's reverse one-to-one `explanation` is not one)
            if not (field.concrete and (field.many_to_one or field.one_to_one)):
                break
            current = field.related_model
        else:
            joins.append("__".join(path))
    return tuple(joins)


def purge_expired_events(*, now=None) -> int:
    """Delete events older than DEEPMED_AUDIT_RETENTION_DAYS (0 = keep forever); the purge itself
    is recorded. Returns how many were deleted (Celery beat: workers.maintenance.purge_audit_events)."""
    days = settings.DEEPMED_AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timezone.timedelta(days=days)
    deleted = AuditEvent.objects.expire_before(cutoff)
    if deleted:
        logger.info("audit retention: deleted %d events older than %s", deleted, cutoff.isoformat())
    record_event(
        actor=None,
        action="audit.retention",
        object_type="audit.auditevent",
        patient=None,
        detail={"deleted": deleted, "before": cutoff.isoformat(), "retention_days": days},
    )
    return deleted
