from django.urls import path

from apps.studies import api

urlpatterns = [
    path("studies", api.StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<uuid:study_id>", api.StudyDetailApi.as_view(), name="api-study"),
    path("studies/<uuid:study_id>/image", api.StudyImageApi.as_view(), name="api-study-image"),
    path("studies/<uuid:study_id>/heatmap", api.StudyHeatmapApi.as_view(), name="api-study-heatmap"),
]
