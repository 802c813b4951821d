from django.urls import path

from apps.modelops import views

urlpatterns = [
    path("", views.console, name="modelops-console"),
    path("runs/", views.start_training, name="modelops-start-training"),
    path("runs/<int:run_id>/", views.run_detail, name="modelops-run"),
    path("runs/<int:run_id>/status.json", views.run_status, name="modelops-run-status"),
    path("runs/<int:run_id>/cancel/", views.cancel_run, name="modelops-run-cancel"),
    path("compare/", views.compare, name="modelops-compare"),
    path("versions/<int:version_id>/promote/", views.promote, name="modelops-promote"),
    path("versions/<int:version_id>/evaluate/", views.evaluate, name="modelops-evaluate"),
    path("versions/<int:version_id>/challenger/", views.set_challenger, name="modelops-set-challenger"),
    path("rollback/", views.rollback, name="modelops-rollback"),
    path("sync/", views.sync_registry, name="modelops-sync"),
    path("augmentations/", views.start_augmentation, name="modelops-start-augmentation"),
]
