from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.accounts.disclaimer import current_disclaimer
from apps.accounts.selectors import current_consent
from apps.accounts.services import accept_disclaimer
from apps.audit.services import client_ip


@login_required
def home(request):
    if request.user.is_patient:
        return redirect("study-list")
    if request.user.is_staff:
        return redirect("admin:index")
    return render(request, "accounts/staff_home.html")


@login_required
@require_http_methods(["GET", "POST"])
def disclaimer(request):
    if request.method == "POST" and request.POST.get("accept") == "yes":
        accept_disclaimer(
            request.user, ip_address=client_ip(request), research_use=request.POST.get("research_use") == "yes"
        )
        return redirect(request.GET.get("next") or "study-upload")
    return render(
        request,
        "accounts/disclaimer.html",
        {"disclaimer": current_disclaimer(), "consent": current_consent(request.user)},
    )
