from django.contrib import admin

from apps.monitoring.models import DriftScore, RetrainingReview


@admin.register(DriftScore)
class DriftScoreAdmin(admin.ModelAdmin):
    list_display = ("model_version", "window_end", "n", "score", "drifted", "reference_source")
    list_filter = ("drifted", "reference_source")
    readonly_fields = [f.name for f in DriftScore._meta.fields]


@admin.register(RetrainingReview)
class RetrainingReviewAdmin(admin.ModelAdmin):
    list_display = ("model_version", "created_at", "resolved_at", "reason")
    list_filter = ("resolved_at",)
