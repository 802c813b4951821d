"""`/metrics` for Prometheus, guarded: it carries clinical totals (predictions by label,
physician agreement, worklist size), so only a client address in DEEPMED_METRICS_ALLOWED_IPS
(addresses or networks; loopback by default) or a scraper sending
`Authorization: Bearer <DEEPMED_METRICS_TOKEN>` may read it. Everyone else gets 403.

The address is the TCP peer (REMOTE_ADDR), never X-Forwarded-For. Behind a reverse proxy on
the same host every request comes from loopback: there, set DEEPMED_METRICS_ALLOWED_IPS empty
(token only) or keep /metrics off the proxy.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponseForbidden
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in allowed if entry.strip())


def address_allowed(remote: str | None, allowed) -> bool:
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(allowed)))


def token_valid(authorization: str, expected: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    if not expected or scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@require_GET
def metrics(request):
    if not (
        token_valid(request.headers.get("Authorization", ""), settings.DEEPMED_METRICS_TOKEN)
        or address_allowed(request.META.get("REMOTE_ADDR"), settings.DEEPMED_METRICS_ALLOWED_IPS)
    ):
        return HttpResponseForbidden("Metrics are for the monitoring system only.\n", content_type="text/plain")
    response = ExportToDjangoView(request)
    response["Cache-Control"] = "no-store"
    return response
