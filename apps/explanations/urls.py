from django.urls import path

from apps.explanations import views

urlpatterns = [
    path("review/<uuid:study_id>/explanation/", views.edit_explanation, name="explanation-edit"),
    path("modelops/explainer-finetune/", views.start_finetune, name="explainer-finetune-start"),
]
