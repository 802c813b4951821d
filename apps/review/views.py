"""Physician pages: worklist, review page, feedback dashboard. Thin: rules live in services."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.decorators import clinical_staff_required
from apps.audit.middleware import audits_patient_data, mark_patient_data_shown
from apps.audit.services import client_ip
from apps.review import charts, priority, selectors, services
from apps.review.models import Decision
from apps.studies import services as study_services
from apps.studies.selectors import get_study_for_user, study_explanation
from deepmed_web.web_errors import add_form_error, errors_as_messages


class WorklistFilterForm(forms.Form):
    label = forms.CharField(required=False)
    confidence = forms.ChoiceField(required=False, choices=[("", "any")] + [(b, b) for b in priority.CONFIDENCE_BANDS])
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    final_label = forms.CharField(required=False)
    # `note` is shown to the patient; `internal_note` to clinicians only.
    note = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    internal_note = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    fit_for_training = forms.BooleanField(required=False, initial=True)


# A refusal about one field is shown at that field (aria-invalid, aria-describedby).
REVIEW_ERROR_FIELDS = {"invalid_final_label": "final_label", "invalid_decision": "decision"}


class IdentifyingTextForm(forms.Form):
    flagged = forms.BooleanField(required=False)  # absent = clear the flag


def _page(request) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


def _worklist(request, filters: selectors.WorklistFilters) -> selectors.Worklist:
    return selectors.worklist(filters, page=_page(request), page_size=settings.DEEPMED_WORKLIST_PAGE_SIZE)


def _filters(request) -> tuple[WorklistFilterForm, selectors.WorklistFilters]:
    form = WorklistFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        return form, selectors.WorklistFilters(**{k: v for k, v in form.cleaned_data.items() if v})
    return form, selectors.WorklistFilters()


@clinical_staff_required
@require_GET
def worklist(request):
    form, filters = _filters(request)
    without_page = request.GET.copy()
    without_page.pop("page", None)
    context = {
        "form": form,
        "worklist": _worklist(request, filters),
        "claim_minutes": settings.DEEPMED_REVIEW_CLAIM_MINUTES,
        "severe_labels": [label for label, level in priority.SEVERITY.items() if level >= priority.SEVERE_AT],
        "severe_threshold": settings.DEEPMED_SEVERE_THRESHOLD,
        "query": request.GET.urlencode(),
        "filter_query": without_page.urlencode(),
    }
    return render(request, "review/worklist.html", context)


@clinical_staff_required
@require_GET
def worklist_rows(request):
    """The worklist's table body and counts alone: review-worklist.js swaps it in on live events."""
    _, filters = _filters(request)
    without_page = request.GET.copy()
    without_page.pop("page", None)
    context = {"worklist": _worklist(request, filters), "filter_query": without_page.urlencode()}
    return render(request, "review/_worklist_rows.html", context)


@clinical_staff_required
@require_POST
def claim(request, study_id):
    with errors_as_messages(request):
        services.claim_study(study_id, physician=request.user, ip_address=client_ip(request))
        return redirect("review-study", study_id=study_id)
    return redirect("review-worklist")  # refused: back to the list, with the reason


@clinical_staff_required
@require_POST
def release(request, study_id):
    with errors_as_messages(request):
        services.release_study(study_id, physician=request.user, ip_address=client_ip(request))
    return redirect("review-worklist")


@clinical_staff_required
@require_http_methods(["GET", "POST"])
@audits_patient_data("studies.study", "review.read")
def review_study(request, study_id):
    study = get_study_for_user(request.user, study_id)
    mark_patient_data_shown(request)  # the page shows the study even when a save is refused (400/403/409)
    form = ReviewForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        save_and_next = request.POST.get("then") == "next"
        try:
            if save_and_next:
                review, next_claim = services.save_review_and_claim_next(
                    study.pk, physician=request.user, ip_address=client_ip(request), **form.cleaned_data
                )
            else:
                review = services.save_review(
                    study.pk, physician=request.user, ip_address=client_ip(request), **form.cleaned_data
                )
        except services.ReviewError as exc:
            status = add_form_error(form, exc, REVIEW_ERROR_FIELDS.get(exc.code))
        else:
            label = review.final_label or "not assessable"
            messages.success(request, f"Review saved (version {review.version}): {label}.")
            if save_and_next and next_claim is not None:
                messages.info(request, "Next study in the worklist, claimed for you.")
                return redirect("review-study", study_id=next_claim.study_id)
            if save_and_next:
                messages.info(request, "The worklist is empty: nothing left to review.")
            return redirect("review-worklist")
    elif request.method == "POST":
        status = 400
    prediction = selectors.champion_prediction(study)
    current = selectors.get_current_review(study)
    claim_ = selectors.active_claim(study)
    context = {
        "study": study,
        "form": form,
        "prediction": prediction,
        "probabilities": sorted(prediction.probabilities.items(), key=lambda i: -i[1]) if prediction else [],
        "classes": selectors.reviewable_classes(study),
        "explanation": study_explanation(study),
        "current_review": current,
        "history": selectors.review_history(study),
        "claim": claim_,
        "claimed_by_me": claim_ is not None and claim_.physician_id == request.user.pk,
        "can_review": prediction is not None
        and (claim_ is None or claim_.physician_id == request.user.pk)
        and (current is None or current.physician_id == request.user.pk),
        "awaiting": study.status in selectors.AWAITING_REVIEW,
    }
    return render(request, "review/study.html", context, status=status)


@clinical_staff_required
@require_POST
def identifying_text(request, study_id):
    """The review page's "identifying text visible" buttons (set or clear the study's flag)."""
    form = IdentifyingTextForm(request.POST)
    form.is_valid()  # a BooleanField is always valid
    study, excluded = study_services.set_identifying_text(
        study_id, flagged=form.cleaned_data["flagged"], actor=request.user, ip_address=client_ip(request)
    )
    if study.has_identifying_text:
        withdrawn = f" {excluded} training sample(s) withdrawn." if excluded else ""
        messages.success(
            request, f"Flagged: identifying text visible. The image is never used for training.{withdrawn}"
        )
    else:
        messages.success(request, "Identifying-text flag cleared: later reviews may train on this image.")
    return redirect("review-study", study_id=study.pk)


@clinical_staff_required
@require_GET
def dashboard(request):
    feedback = selectors.model_feedback()
    context = {
        "feedback": [(entry, charts.confusion_grid(entry.labels, entry.matrix)) for entry in feedback],
        "agreement_chart": charts.agreement_chart(selectors.agreement_over_time()),
        "worklist_counts": selectors.worklist().counts,
        "my_reviews": selectors.reviews_by(request.user),
    }
    return render(request, "review/dashboard.html", context)
