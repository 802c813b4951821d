"""Patient-facing study pages. Thin: intake and state live in services, reads in selectors."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.disclaimer import current_disclaimer
from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.studies import events, selectors, services
from deepmed_web.api import error_body
from deepmed_web.middleware import RETRY_AFTER_SECONDS
from deepmed_web.throttles import UPLOAD_THROTTLES, web_rate_limit_wait


class UploadForm(forms.Form):
    image = forms.FileField(help_text="PNG, JPEG or DICOM chest X-ray")
    patient_age = forms.IntegerField(required=False, min_value=0, max_value=130)
    symptoms = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


def intake_error_status(code: str) -> int:
    """HTTP status of a refused upload (shared by the web form's XHR path and the API)."""
    return {"consent_required": 403, "file_too_large": 413, "server_busy": 503}.get(code, 400)


def intake_retry_after(code: str) -> int | None:
    """Seconds after which to retry a refusal that is about the server's load, not the file (503)."""
    return int(RETRY_AFTER_SECONDS) if intake_error_status(code) == 503 else None


def _patient_only(request) -> None:
    if not request.user.is_patient:
        raise PermissionDenied("Only patients upload studies.")


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_GET
def study_list(request):
    _patient_only(request)
    return render(request, "studies/list.html", {"rows": selectors.patient_history(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def study_upload(request):
    """The form posts normally without JavaScript; upload.js posts it by XHR (progress bar)
    with `Accept: application/json` and follows the returned `redirect`."""
    _patient_only(request)
    try:
        services.ensure_can_upload(request.user)
    except services.StudyIntakeError as exc:
        if request.method == "POST" and _wants_json(request):
            return JsonResponse(error_body(exc.code, exc.message), status=intake_error_status(exc.code))
        return redirect(f"{reverse('disclaimer')}?next={request.path}")
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "GET":
        return _upload_page(request, form)
    error = None
    wait = web_rate_limit_wait(request, UPLOAD_THROTTLES)
    if wait is not None:
        message = f"Too many uploads for now. Please try again in {int(wait) + 1} seconds."
        form.add_error(None, message)
        error = ("throttled", message, 429)
    elif form.is_valid():
        try:
            study = services.create_study_from_upload(
                owner=request.user,
                upload=form.cleaned_data["image"],
                patient_age=form.cleaned_data["patient_age"],
                symptoms=form.cleaned_data["symptoms"] or "",
                ip_address=client_ip(request),
            )
        except services.StudyIntakeError as exc:
            form.add_error("image", exc.message)
            error = (exc.code, exc.message, intake_error_status(exc.code))
        else:
            if study.is_duplicate_upload:
                messages.info(request, "You already uploaded this image; this is that study.")
            url = reverse("study-detail", kwargs={"study_id": study.id})
            if _wants_json(request):
                return JsonResponse({"redirect": url, "duplicate": study.is_duplicate_upload}, status=201)
            return redirect(url)
    else:
        error = ("invalid_request", "Please check the form.", 400)
    code, message, status = error
    if _wants_json(request):
        response = JsonResponse(error_body(code, message, {"fields": form.errors.get_json_data()}), status=status)
    else:
        response = _upload_page(request, form, status=status)
    if (retry_after := intake_retry_after(code)) is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _upload_page(request, form, status: int = 200):
    context = {"form": form, "max_upload_mb": settings.DEEPMED_MAX_UPLOAD_MB}
    return render(request, "studies/upload.html", context, status=status)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.read")
def study_detail(request, study_id):
    study = selectors.get_study_for_user(request.user, study_id)
    return render(
        request,
        "studies/detail.html",
        {
            "study": study,
            "result": selectors.study_result(study),
            "steps": selectors.progress_steps(study.status),
            "disclaimer": current_disclaimer(),
            "status_payload": events.study_status_payload(study),
            "step_of_status": selectors.STEP_OF_STATUS,
        },
    )


@login_required
@require_POST
@audits_patient_data("studies.study", "study.delete_request")
def study_delete(request, study_id):
    study = selectors.get_own_study(request.user, study_id)
    services.delete_study(study, actor=request.user, ip_address=client_ip(request))
    messages.success(request, "The study, its image and every file derived from it were deleted.")
    return redirect("study-list")


@login_required
@require_GET
@audits_patient_data("studies.study", "study.status")
def study_status(request, study_id):
    """Polling fallback for when WebSockets are unavailable."""
    study = selectors.get_study_for_user(request.user, study_id)
    return JsonResponse(events.study_status_payload(study))


def png_response(field) -> FileResponse:
    """A stored PNG, privately: only ever returned after a permission check."""
    if not field:
        raise Http404("No such file.")
    try:
        handle = field.open("rb")
    except FileNotFoundError as exc:
        raise Http404("No such file.") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
@audits_patient_data("studies.study", "study.image")
def study_image(request, study_id):
    return png_response(selectors.get_study_for_user(request.user, study_id).image)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.heatmap")
def study_heatmap(request, study_id):
    prediction = selectors.visible_prediction(selectors.get_study_for_user(request.user, study_id))
    return png_response(prediction.heatmap if prediction else None)
