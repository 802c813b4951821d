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
    checks = run_checks()
    failed = sorted(name for name, result in checks.items() if result != "ok")
    status = 200 if not failed else 503
    return JsonResponse({"status": "ok" if not failed else "unavailable", "failed": failed, "checks": checks}, status=status)
