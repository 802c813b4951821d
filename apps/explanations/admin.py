from django.contrib import admin

from apps.explanations.models import ExplanationEdit


@admin.register(ExplanationEdit)
class ExplanationEditAdmin(admin.ModelAdmin):
    list_display = ("explanation", "editor", "original_engine", "created_at")
    readonly_fields = ("explanation", "editor", "original_text", "original_engine", "edited_text", "prompt", "validation")
