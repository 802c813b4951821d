"""Patient-facing study pages. Thin: intake and state live in services, reads in selectors."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.disclaimer import current_disclaimer
from apps.accounts.selectors import has_current_consent
from apps.audit.middleware import audits_patient_data
from apps.audit.services import client_ip
from apps.studies import events, selectors, services


class UploadForm(forms.Form):
    image = forms.FileField(help_text="PNG, JPEG or DICOM chest X-ray")
    patient_age = forms.IntegerField(required=False, min_value=0, max_value=130)
    symptoms = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


def _patient_only(request) -> None:
    if not request.user.is_patient:
        raise PermissionDenied("Only patients upload studies.")


@login_required
@require_GET
def study_list(request):
    _patient_only(request)
    return render(request, "studies/list.html", {"studies": selectors.studies_for_owner(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def study_upload(request):
    _patient_only(request)
    if not has_current_consent(request.user):
        return redirect(f"/accounts/disclaimer/?next={request.path}")
    form = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            study = services.create_study(
                owner=request.user,
                data=form.cleaned_data["image"].read(),
                patient_age=form.cleaned_data["patient_age"],
                symptoms=form.cleaned_data["symptoms"] or "",
                ip_address=client_ip(request),
            )
        except services.StudyIntakeError as exc:
            form.add_error("image", exc.message)
            status = 400
        else:
            return redirect("study-detail", study_id=study.id)
    elif request.method == "POST":
        status = 400
    return render(request, "studies/upload.html", {"form": form}, status=status)


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
            "prediction": selectors.champion_prediction(study),
            "disclaimer": current_disclaimer(),
            "status_payload": events.study_status_payload(study),
        },
    )


@login_required
@require_GET
@audits_patient_data("studies.study", "study.status")
def study_status(request, study_id):
    """Polling fallback for when WebSockets are unavailable."""
    study = selectors.get_study_for_user(request.user, study_id)
    return JsonResponse(events.study_status_payload(study))


def _file_response(field) -> FileResponse:
    if not field:
        raise Http404("No such file.")
    response = FileResponse(field.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
@audits_patient_data("studies.study", "study.image")
def study_image(request, study_id):
    return _file_response(selectors.get_study_for_user(request.user, study_id).image)


@login_required
@require_GET
@audits_patient_data("studies.study", "study.heatmap")
def study_heatmap(request, study_id):
    study = selectors.get_study_for_user(request.user, study_id)
    prediction = selectors.champion_prediction(study)
    return _file_response(prediction.heatmap if prediction else None)
