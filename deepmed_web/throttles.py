"""Rate limits for the API's sensitive doors: authentication and upload.

Each door is limited twice, per client address and per account, so neither one noisy
address nor one account spread over many addresses can hammer it. The web sign-up and upload
forms share the same counters (`web_rate_limit_wait`). Rates come from
settings.DEEPMED_THROTTLE_RATES (env DEEPMED_THROTTLE_*), read on every request so they can
be changed without a code change; counters live in the default cache (Redis in services
mode, so every web process shares them). A refused request gets 429 `throttled` with
Retry-After.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from apps.audit.services import client_ip


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return settings.DEEPMED_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        # The rate is looked up per request (SimpleRateThrottle reads it once, at __init__).
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_ident(self, request) -> str:
        return client_ip(request) or "unknown"


class IpThrottle(_SettingsRateThrottle):
    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AccountThrottle(_SettingsRateThrottle):
    """Per account: the signed-in user, or for log-in/sign-up the username being tried."""

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            data = getattr(request, "data", None) or request.POST  # DRF request, or a Django form post
            username = data.get("username") if hasattr(data, "get") else None
            if not isinstance(username, str) or not username:
                return None  # nothing to count against: the per-address limit still applies
            ident = f"name-{username.strip().lower()[:150]}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AuthIpThrottle(IpThrottle):
    scope = "auth_ip"


class AuthAccountThrottle(AccountThrottle):
    scope = "auth_account"


class UploadIpThrottle(IpThrottle):
    scope = "upload_ip"


class UploadAccountThrottle(AccountThrottle):
    scope = "upload_account"


AUTH_THROTTLES = [AuthIpThrottle, AuthAccountThrottle]
UPLOAD_THROTTLES = [UploadIpThrottle, UploadAccountThrottle]


def web_rate_limit_wait(request, throttles: list[type[SimpleRateThrottle]]) -> float | None:
    """The same limits for a plain Django view (sign-up and upload forms): None when the
    request may go on, else the seconds to wait. Counts the request like the API does."""
    waits = []
    for throttle_class in throttles:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1.0)
    return max(waits) if waits else None


class ThrottleUploadsOnly:
    """Mixin for a view whose GET lists and POST uploads: only the upload is rate-limited."""

    def get_throttles(self):
        if self.request.method == "POST":
            return [throttle() for throttle in UPLOAD_THROTTLES]
        return super().get_throttles()
