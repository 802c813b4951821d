from django.urls import path

from apps.studies import views

urlpatterns = [
    path("", views.study_list, name="study-list"),
    path("upload/", views.study_upload, name="study-upload"),
    path("<uuid:study_id>/", views.study_detail, name="study-detail"),
    path("<uuid:study_id>/delete/", views.study_delete, name="study-delete"),
    path("<uuid:study_id>/status.json", views.study_status, name="study-status"),
    path("<uuid:study_id>/image.png", views.study_image, name="study-image"),
    path("<uuid:study_id>/thumbnail.png", views.study_thumbnail, name="study-thumbnail"),
    path("<uuid:study_id>/report.pdf", views.study_report, name="study-report"),
    path("<uuid:study_id>/heatmap.png", views.study_heatmap, name="study-heatmap"),
]
