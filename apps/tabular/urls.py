from django.urls import path

from apps.tabular import views

urlpatterns = [
    path("", views.lab, name="tabular-lab"),
    path("datasets/", views.upload, name="tabular-upload"),
    path("datasets/<int:pk>/", views.dataset_detail, name="tabular-dataset"),
    path("datasets/<int:pk>/experiments/", views.start, name="tabular-start"),
    path("datasets/<int:pk>/plots/<str:name>.png", views.dataset_plot, name="tabular-dataset-plot"),
    path("experiments/<int:pk>/", views.experiment_detail, name="tabular-experiment"),
    path("experiments/<int:pk>/status.json", views.experiment_status, name="tabular-experiment-status"),
    path("experiments/<int:pk>/cancel/", views.experiment_cancel, name="tabular-experiment-cancel"),
    path("experiments/<int:pk>/compare/", views.compare, name="tabular-compare"),
    path("experiments/<int:pk>/plots/<str:name>.png", views.experiment_plot, name="tabular-experiment-plot"),
    path("experiments/<int:pk>/promote/", views.promote, name="tabular-promote"),
    path("experiments/<int:pk>/rollback/", views.rollback, name="tabular-rollback"),
    path("risk/", views.risk_index, name="tabular-risk-index"),
    path("risk/<int:pk>/", views.risk, name="tabular-risk"),
    path("risk/<int:pk>/batch/", views.risk_batch, name="tabular-risk-batch"),
]
