from django.contrib import admin

from apps.audit.admin import PatientDataAdmin
from apps.explanations.models import Explanation, ExplanationEdit


@admin.register(ExplanationEdit)
class ExplanationEditAdmin(PatientDataAdmin):
    """Read-only and audited: physicians' edits of a patient's explanation."""

    list_display = ("explanation", "editor", "original_engine", "created_at")


@admin.register(Explanation)
class ExplanationAdmin(PatientDataAdmin):
    list_display = ("study", "engine", "model_name", "created_at")
