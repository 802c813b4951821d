"""Web forms: the physician's edit of a study's patient explanation (review page; same service
as `PUT /api/v1/studies/<id>/explanation`), and the admin's LoRA fine-tune start (console)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.accounts.decorators import admin_required, clinical_staff_required
from apps.audit.services import client_ip
from apps.explanations import services
from apps.studies.selectors import get_study_for_user


@clinical_staff_required
@require_POST
def edit_explanation(request, study_id):
    study = get_study_for_user(request.user, study_id)
    try:
        edit = services.edit_explanation(
            study=study, editor=request.user, text=request.POST.get("text", ""), ip_address=client_ip(request)
        )
    except services.ExplanationError as exc:
        messages.error(request, exc.message)
    else:
        outcome = (edit.validation or {}).get("outcome", "")
        note = f" The safety validator says: {outcome}." if outcome and outcome != "pass" else ""
        messages.success(request, f"The patient now sees your explanation.{note}")
    return redirect("review-study", study_id=study.pk)


@admin_required
@require_POST
def start_finetune(request):
    try:
        run = services.start_explainer_finetune(actor=request.user, steps=int(request.POST.get("steps") or 20))
    except (ValueError, services.ExplanationError) as exc:
        messages.error(request, getattr(exc, "message", "The number of steps is not valid."))
    else:
        messages.success(request, f"Explainer fine-tune {run.pk} queued on the training queue.")
    return redirect("modelops-console")
