from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.accounts import views as account_views

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/disclaimer/", account_views.disclaimer, name="disclaimer"),
    path("studies/", include("apps.studies.urls")),
    path("health/", include("apps.health.urls")),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),  # /metrics
]
