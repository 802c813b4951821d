from django.contrib import admin

from apps.modelops.models import AugmentationJob, ModelVersion, Promotion, TrainingRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("registered_name", "version", "alias", "status", "mlflow_run_id", "created_at")
    list_filter = ("alias", "status")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "trigger", "mlflow_run_id", "started_by", "created_at", "finished_at", "attempts")
    list_filter = ("status", "trigger")


@admin.register(AugmentationJob)
class AugmentationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "target_count", "intensity", "status", "created_at", "attempts")


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    """Read-only: the promotion history is an audit trail."""

    list_display = ("created_at", "action", "version", "previous", "actor", "override_reason")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
