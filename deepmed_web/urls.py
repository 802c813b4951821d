from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from apps.accounts import views as account_views
from deepmed_web.metrics import metrics
from deepmed_web.security import content_security_policy

# Swagger UI with its init script as a same-origin file (no inline script); Redoc without the
# Google Fonts links. Both still need inline styles: their own, relaxed policy (settings).
docs_policy = content_security_policy(settings.DEEPMED_CSP_API_DOCS)

urlpatterns = [
    path("", account_views.landing, name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/disclaimer/", account_views.disclaimer, name="disclaimer"),
    path("accounts/", include("apps.accounts.urls")),
    path("studies/", include("apps.studies.urls")),
    path("review/", include("apps.review.urls")),
    path("", include("apps.explanations.urls")),
    path("modelops/", include("apps.modelops.urls")),
    path("tabular/", include("apps.tabular.urls")),
    path("audit/", include("apps.audit.urls")),
    path("health/", include("apps.health.urls")),
    path("api/v1/", include("deepmed_web.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", docs_policy(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path(
        "api/redoc/",
        docs_policy(SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html")),
        name="api-redoc",
    ),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="prometheus-django-metrics"),  # guarded: deepmed_web/metrics.py
]
