from django.urls import path

from apps.review import api

urlpatterns = [
    path("review/worklist", api.WorklistApi.as_view(), name="api-review-worklist"),
    path("review/<uuid:study_id>", api.ReviewCreateApi.as_view(), name="api-review"),
    path("review/<uuid:study_id>/claim", api.ClaimApi.as_view(), name="api-review-claim"),
    path("review/<uuid:study_id>/release", api.ReleaseApi.as_view(), name="api-review-release"),
    path(
        "review/<uuid:study_id>/identifying-text", api.IdentifyingTextApi.as_view(), name="api-review-identifying-text"
    ),
]
