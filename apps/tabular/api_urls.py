from django.urls import path

from apps.tabular import api

urlpatterns = [
    path("tabular/models", api.ModelListApi.as_view(), name="api-tabular-models"),
    path("tabular/models/<str:name>/predict", api.PredictApi.as_view(), name="api-tabular-predict"),
    path("tabular/models/<str:name>/rollback", api.RollbackApi.as_view(), name="api-tabular-rollback"),
    path("tabular/datasets", api.DatasetListApi.as_view(), name="api-tabular-datasets"),
    path("tabular/datasets/<int:pk>", api.DatasetDetailApi.as_view(), name="api-tabular-dataset"),
    path("tabular/experiments", api.ExperimentListApi.as_view(), name="api-tabular-experiments"),
    path("tabular/experiments/<int:pk>", api.ExperimentDetailApi.as_view(), name="api-tabular-experiment"),
    path("tabular/experiments/<int:pk>/promote", api.PromoteApi.as_view(), name="api-tabular-promote"),
]
