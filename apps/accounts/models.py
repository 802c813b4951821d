from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    PATIENT = "patient", "Patient"
    PHYSICIAN = "physician", "Physician"
    ADMIN = "admin", "Administrator"


class User(AbstractUser):
    """A person using DeepMed. The role decides what they see; a Django group of the
    same name carries the permissions, so admins can still fine-tune them."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.PATIENT)

    @property
    def is_patient(self) -> bool:
        return self.role == Role.PATIENT

    @property
    def is_physician(self) -> bool:
        return self.role == Role.PHYSICIAN

    @property
    def is_clinical_staff(self) -> bool:
        """Physicians and admins may see studies that are not their own (for review)."""
        return self.role in (Role.PHYSICIAN, Role.ADMIN)


class Consent(models.Model):
    """A patient's acceptance of one version of the disclaimer (append-only history)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consents")
    disclaimer_version = models.CharField(max_length=32)
    accepted_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-accepted_at"]
        indexes = [models.Index(fields=["user", "disclaimer_version"])]

    def __str__(self) -> str:
        return f"{self.user} accepted v{self.disclaimer_version}"


class ResearchConsent(models.Model):
    """One explicit research-use decision (grant or withdrawal) of one version of the research
    text; append-only history, the latest row is the patient's current choice. Separate from
    the disclaimer on purpose: uploading never implies research use."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="research_consents")
    version = models.CharField(max_length=32)
    granted = models.BooleanField()
    decided_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {'granted' if self.granted else 'withdrew'} research use v{self.version}"
