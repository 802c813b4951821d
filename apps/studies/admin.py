from django.contrib import admin

from apps.studies.models import Explanation, Prediction, Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status", "original_format", "created_at")
    list_filter = ("status", "original_format")
    readonly_fields = ("id", "sha256", "status", "failure_code", "failure_reason", "created_at", "updated_at")


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("study", "role", "label", "confidence", "model_name", "model_version_label", "created_at")


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = ("study", "engine", "model_name", "created_at")
