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
from deepmed_web.web_errors import errors_as_messages


@clinical_staff_required
@require_POST
def edit_explanation(request, study_id):
    study = get_study_for_user(request.user, study_id)
    with errors_as_messages(request):
        edit = services.edit_explanation(
            study=study, editor=request.user, text=request.POST.get("text", ""), ip_address=client_ip(request)
        )
        outcome = (edit.validation or {}).get("outcome", "")
        note = f" The safety validator says: {outcome}." if outcome and outcome != "pass" else ""
        messages.success(request, f"The patient now sees your explanation.{note}")
    return redirect("review-study", study_id=study.pk)


@admin_required
@require_POST
def start_finetune(request):
    try:
        steps = int(request.POST.get("steps") or 20)
    except ValueError:
        messages.error(request, "The number of steps is not valid.")
        return redirect("modelops-console")
    with errors_as_messages(request):
        run = services.start_explainer_finetune(actor=request.user, steps=steps)
        messages.success(request, f"Explainer fine-tune {run.pk} queued on the training queue.")
    return redirect("modelops-console")
