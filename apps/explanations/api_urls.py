from django.urls import path

from apps.explanations import api

urlpatterns = [
    path("studies/<uuid:study_id>/explanation", api.StudyExplanationApi.as_view(), name="api-study-explanation"),
    path("explainer/finetune-runs", api.FinetuneRunCreateApi.as_view(), name="api-explainer-finetune-runs"),
    path("explainer/finetune-runs/<int:run_id>", api.FinetuneRunDetailApi.as_view(), name="api-explainer-finetune-run"),
]
