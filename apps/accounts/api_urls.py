from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("auth/register", api.RegisterApi.as_view(), name="api-register"),
    path("auth/token", api.TokenApi.as_view(), name="api-token"),
    path("auth/token/refresh", api.TokenRefreshApi.as_view(), name="api-token-refresh"),
    path("auth/logout", api.LogoutApi.as_view(), name="api-logout"),
    path("auth/password", api.PasswordChangeApi.as_view(), name="api-password"),
    path("me", api.MeApi.as_view(), name="api-me"),
    path("consent", api.ConsentApi.as_view(), name="api-consent"),
    path("consent/research", api.ResearchConsentApi.as_view(), name="api-research-consent"),
    path("account", api.AccountApi.as_view(), name="api-account"),
]
