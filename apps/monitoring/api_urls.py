from django.urls import path

from apps.monitoring import api

urlpatterns = [
    path("monitoring/drift", api.DriftApi.as_view(), name="api-monitoring-drift"),
]
