from django.contrib import admin

from apps.modelops.models import ModelVersion, TrainingRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("registered_name", "version", "alias", "status", "created_at")
    list_filter = ("alias", "status")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "mlflow_run_id", "started_by", "created_at", "finished_at")
    list_filter = ("status",)
