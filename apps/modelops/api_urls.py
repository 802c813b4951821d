from django.urls import path

from apps.modelops import api

urlpatterns = [
    path("models", api.ModelListApi.as_view(), name="api-models"),
    path("models/<str:name>/versions/<str:version>/promote", api.PromoteApi.as_view(), name="api-model-promote"),
    path("models/<str:name>/rollback", api.RollbackApi.as_view(), name="api-model-rollback"),
    path("training-runs", api.TrainingRunCreateApi.as_view(), name="api-training-runs"),
    path("training-runs/<int:run_id>", api.TrainingRunDetailApi.as_view(), name="api-training-run"),
    path("retraining-queue", api.RetrainingQueueApi.as_view(), name="api-retraining-queue"),
]
