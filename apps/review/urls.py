from django.urls import path

from apps.review import views

urlpatterns = [
    path("", views.worklist, name="review-worklist"),
    path("rows/", views.worklist_rows, name="review-worklist-rows"),
    path("dashboard/", views.dashboard, name="review-dashboard"),
    path("<uuid:study_id>/", views.review_study, name="review-study"),
    path("<uuid:study_id>/claim/", views.claim, name="review-claim"),
    path("<uuid:study_id>/release/", views.release, name="review-release"),
    path("<uuid:study_id>/identifying-text/", views.identifying_text, name="review-identifying-text"),
]
