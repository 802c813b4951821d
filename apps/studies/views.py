"""Patient-facing study pages. Thin: intake and state live in services, reads in selectors."""

from __future__ import annotations

import hashlib
import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import parse_etags
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.disclaimer import current_disclaimer
from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.core.errors import ApplicationError
from apps.studies import events, selectors, services
from apps.studies.report import build_study_report
from apps.studies.responses import png_response
from deepmed_web.throttles import UPLOAD_THROTTLES, web_rate_limit_wait
from deepmed_web.web_errors import add_form_error, json_error, with_retry_after

# What the file picker offers: PNG, JPEG and DICOM (by extension, as DICOM files often have no
# media type, and by media type). The server still checks the bytes (ml_core.imaging).
UPLOAD_ACCEPT = ".png,.jpg,.jpeg,.dcm,.dicom,image/png,image/jpeg,application/dicom"


class UploadForm(forms.Form):
    image = forms.FileField(
        label="Chest X-ray image",
        help_text="PNG, JPEG or DICOM chest X-ray",
        widget=forms.FileInput(attrs={"accept": UPLOAD_ACCEPT, "class": "file-input"}),
    )
    patient_age = forms.IntegerField(
        label="Age (optional)",
        required=False,
        min_value=0,
        max_value=130,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    symptoms = forms.CharField(
        label="Symptoms (optional)",
        required=False,
        max_length=1000,
        help_text="For example: cough for a week, fever. The physician reads this with your image.",
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
    )


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
            return json_error(exc)
        messages.info(request, "Before your first upload, please read and accept the disclaimer below.")
        return redirect(f"{reverse('disclaimer')}?next={request.path}")
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "GET":
        return _upload_page(request, form)
    wait = web_rate_limit_wait(request, UPLOAD_THROTTLES)
    if wait is not None:
        refusal = ApplicationError(
            f"Too many uploads for now. Please try again in {int(wait) + 1} seconds.", code="throttled", http_status=429
        )
        add_form_error(form, refusal)
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
            refusal = exc
            add_form_error(form, exc, "image")
        else:
            if study.is_duplicate_upload:
                messages.info(request, "You already uploaded this image; this is that study.")
            url = reverse("study-detail", kwargs={"study_id": study.id})
            if _wants_json(request):
                return JsonResponse({"redirect": url, "duplicate": study.is_duplicate_upload}, status=201)
            return redirect(url)
    else:
        refusal = ApplicationError("Please check the form.", code="invalid_request")
    if _wants_json(request):  # upload.js shows the form's errors
        return json_error(refusal, {"fields": form.errors.get_json_data()})
    return with_retry_after(_upload_page(request, form, status=refusal.http_status), refusal)


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
    """Polling fallback for when WebSockets are unavailable: 304 (no body) while the client's
    If-None-Match holds the ETag of the current payload."""
    study = selectors.get_study_for_user(request.user, study_id)
    payload = events.study_status_payload(study)
    etag = status_etag(payload)
    held = parse_etags(request.headers.get("If-None-Match", ""))
    response = HttpResponseNotModified() if etag in held or "*" in held else JsonResponse(payload)
    response["ETag"] = etag
    # Patient data is never stored by the browser: the page keeps the ETag itself and sends it
    # explicitly, so a 304 still saves the body without any cached copy.
    response["Cache-Control"] = "private, no-store"
    return response


def status_etag(payload: dict) -> str:
    return f'"{hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]}"'


@login_required
@require_GET
@audits_patient_data("studies.study", "study.image")
def study_image(request, study_id):
    return png_response(selectors.get_study_for_user(request.user, study_id).image)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.thumbnail")
def study_thumbnail(request, study_id):
    """The image at most 160 px on a side (worklists); studies from before thumbnails: the image."""
    study = selectors.get_study_for_user(request.user, study_id)
    return png_response(study.thumbnail or study.image)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.heatmap")
def study_heatmap(request, study_id):
    prediction = selectors.visible_prediction(selectors.get_study_for_user(request.user, study_id))
    return png_response(prediction.heatmap if prediction else None)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.report")
def study_report(request, study_id):
    """The study as a PDF for the patient to take to their doctor (same access as the page)."""
    study = selectors.get_study_for_user(request.user, study_id)
    response = HttpResponse(build_study_report(study), content_type="application/pdf")
    name = f"deepmed-study-{study.created_at:%Y-%m-%d}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
