from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.health.checks import run_checks


@never_cache
@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    """503 naming what is down. `?exclude=worker` lets a web pod's readiness probe ignore the
    workers (an outage of the workers should not take the web tier out of its load balancer)."""
    exclude = frozenset(filter(None, request.GET.get("exclude", "").split(",")))
    checks = run_checks(exclude=exclude)
    failed = sorted(name for name, result in checks.items() if result != "ok")
    status = 200 if not failed else 503
    return JsonResponse(
        {"status": "ok" if not failed else "unavailable", "failed": failed, "checks": checks}, status=status
    )
