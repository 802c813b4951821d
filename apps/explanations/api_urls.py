from django.urls import path

from apps.explanations import api

urlpatterns = [
    path("studies/<uuid:study_id>/explanation", api.StudyExplanationApi.as_view(), name="api-study-explanation"),
]
