"""Response headers that keep pages and patient data where they belong.

- ContentSecurityPolicyMiddleware: every HTML response carries `Content-Security-Policy`
  (settings.DEEPMED_CSP, env `DEEPMED_CSP`; empty = no header). Our templates have no inline
  script, style or event handler (a test scans them); a view that needs something else says so
  with @content_security_policy(...) (only the API documentation pages do).
- PrivateNoStoreMiddleware: whatever an authenticated user or an API client receives (pages,
  status JSON, images, tokens) is `Cache-Control: private, no-store`, so neither the browser's
  disk cache nor a shared proxy keeps a patient's data, unless the view set its own
  Cache-Control on purpose. Static files (WhiteNoise answers before this) stay cacheable.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings

CSP_HEADER = "Content-Security-Policy"
NO_STORE = "private, no-store"


def content_security_policy(policy: str):
    """Decorator: this view's HTML answers carry `policy` instead of settings.DEEPMED_CSP."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            response.headers[CSP_HEADER] = policy
            return response

        return wrapped

    return decorate


def _is_html(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().lower() == "text/html"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.DEEPMED_CSP
        if policy and _is_html(response) and CSP_HEADER not in response:
            response.headers[CSP_HEADER] = policy
        return response


class PrivateNoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" in response:
            return response
        user = getattr(request, "user", None)  # DRF puts an API token's user here too
        if (user is not None and user.is_authenticated) or request.path.startswith("/api/v1/"):
            response.headers["Cache-Control"] = NO_STORE
        return response
