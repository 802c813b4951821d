from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")

    def expire_before(self, cutoff) -> int:
        """The one way events leave the trail: the retention policy
        (apps.audit.services.purge_expired_events). Returns how many were deleted."""
        return models.QuerySet.delete(self.filter(at__lt=cutoff))[0]


class Outcome(models.TextChoices):
    """What happened to a request (apps.audit.middleware.outcome_for_response says how a
    response maps to it)."""

    ALLOWED = "allowed", "Allowed"  # the data was served (2xx, 304) or the action done (then redirected)
    DENIED = "denied", "Denied"  # not logged in (redirect to log-in, 401), not allowed (403) or not found (404)
    INVALID = "invalid", "Invalid"  # refused as malformed before anything was read (405, other 4xx)
    ERROR = "error", "Error"  # the server failed (5xx)


class AuditEvent(models.Model):
    """Who did what to which object, when, from where, and whether it was allowed.

    Append-only: instances cannot be changed or deleted through the ORM or the admin.
    The actor's username is copied so the trail survives account deletion.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.ALLOWED)
    detail = models.JSONField(default=dict, blank=True)
    # The patient whose data this is about (a study's owner), copied like the actor's username so
    # the trail can be searched by patient and survives the account; empty when none.
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    patient_username = models.CharField(max_length=150, blank=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["action"]),
            models.Index(fields=["actor_username", "at"], name="audit_actor_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action} {self.object_type}:{self.object_id} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")
