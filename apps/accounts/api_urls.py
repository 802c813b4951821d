from django.urls import path
from rest_framework_simplejwt.views import TokenRefreshView

from apps.accounts import api

urlpatterns = [
    path("auth/register", api.RegisterApi.as_view(), name="api-register"),
    path("auth/token", api.TokenApi.as_view(), name="api-token"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="api-token-refresh"),
    path("consent", api.ConsentApi.as_view(), name="api-consent"),
    path("consent/research", api.ResearchConsentApi.as_view(), name="api-research-consent"),
    path("account", api.AccountApi.as_view(), name="api-account"),
]
