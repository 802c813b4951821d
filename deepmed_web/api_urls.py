"""/api/v1/: each app contributes its own routes in apps/<app>/api_urls.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.studies.api_urls")),
    path("", include("apps.review.api_urls")),
    path("", include("apps.modelops.api_urls")),
    path("", include("apps.explanations.api_urls")),
    path("", include("apps.monitoring.api_urls")),
    path("", include("apps.tabular.api_urls")),
]
