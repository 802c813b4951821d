"""Admin console for model operations. Thin: services decide, selectors read."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.decorators import admin_required
from apps.explanations.models import ExplainerFinetuneRun
from apps.explanations.selectors import edits_for_training
from apps.modelops import events, selectors, services
from apps.modelops.models import AugmentationJob, ModelVersion, Promotion, TrainingRun
from deepmed_web.web_errors import errors_as_messages


def _architectures() -> tuple[str, ...]:
    from ml_core.models import CAM_ARCHITECTURES

    return CAM_ARCHITECTURES


class TrainingForm(forms.Form):
    architecture = forms.ChoiceField(choices=())
    tier = forms.ChoiceField(choices=[(t, t) for t in services.TIERS], initial="quick")
    augmentation = forms.ChoiceField(choices=[(a, a) for a in services.AUGMENTATION_LEVELS], initial="light")
    initialisation = forms.ChoiceField(
        choices=[
            ("champion", "fine-tune the champion (warm start)"),
            ("imagenet", "ImageNet weights"),
            ("random", "random (from scratch)"),
        ],
        required=False,  # empty: DEEPMED_TRAINING_INIT
        help_text="Falls back to ImageNet weights when the champion has another architecture.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["architecture"].choices = [(a, a) for a in _architectures()]
        self.fields["architecture"].initial = settings.DEEPMED_RETRAIN_ARCHITECTURE
        self.fields["initialisation"].initial = settings.DEEPMED_TRAINING_INIT


class AugmentationForm(forms.Form):
    label = forms.ChoiceField(choices=(), label="Class", help_text="one of the deployed model's classes")
    target_count = forms.IntegerField(min_value=1, max_value=100_000, label="Target count")
    intensity = forms.ChoiceField(choices=[(a, a) for a in services.AUGMENTATION_LEVELS[1:]], initial="medium")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = [(c, c) for c in selectors.augmentation_classes()]


def mlflow_run_url(run_id: str) -> str:
    return f"{settings.MLFLOW_UI_URL.rstrip('/')}/#/runs/{run_id}" if settings.MLFLOW_UI_URL and run_id else ""


@admin_required
@require_GET
def console(request):
    champion, challenger = selectors.get_champion(), selectors.get_challenger()
    versions = selectors.list_versions()
    return render(
        request,
        "modelops/console.html",
        {
            "versions": [(v, selectors.held_out_summary(v)) for v in versions],
            "champion": champion,
            "champion_summary": selectors.held_out_summary(champion) if champion else None,
            "challenger": challenger,
            "runs": TrainingRun.objects.select_related("result_version", "started_by")[:20],
            "augmentations": AugmentationJob.objects.all()[:10],
            "preview": selectors.dataset_preview(),
            "queue": selectors.retraining_queue(),
            "shadow": selectors.shadow_agreement(challenger),
            "challenger_physicians": selectors.physician_agreement(challenger),
            "champion_physicians": selectors.physician_agreement(champion),
            "promotions": Promotion.objects.select_related("version", "previous", "actor")[:10],
            "can_roll_back": champion is not None
            and Promotion.objects.filter(version=champion).exclude(previous=None).exists(),
            "training_form": TrainingForm(),
            "augmentation_form": AugmentationForm(),
            "mlflow_ui": settings.MLFLOW_UI_URL,
            "explainer_edits": edits_for_training().count(),
            "explainer_runs": ExplainerFinetuneRun.objects.select_related("started_by")[:10],
        },
    )


@admin_required
@require_POST
def start_training(request):
    form = TrainingForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Training not started: {form.errors.as_text()}")
        return redirect("modelops-console")
    run = services.start_training_run(**form.cleaned_data, actor=request.user)
    return redirect("modelops-run", run_id=run.pk)


@admin_required
@require_GET
def run_detail(request, run_id: int):
    run = get_object_or_404(TrainingRun.objects.select_related("result_version", "started_by"), pk=run_id)
    return render(
        request,
        "modelops/run.html",
        {
            "run": run,
            "payload": events.training_payload(run),
            "mlflow_url": mlflow_run_url(run.mlflow_run_id),
            "champion": selectors.get_champion(),
        },
    )


@admin_required
@require_GET
def run_status(request, run_id: int):
    """Polling fallback of the live progress (same payload as the WebSocket)."""
    return JsonResponse(events.training_payload(get_object_or_404(TrainingRun, pk=run_id)))


@admin_required
@require_POST
def cancel_run(request, run_id: int):
    run = services.cancel_training_run(get_object_or_404(TrainingRun, pk=run_id), actor=request.user)
    if run.status == "cancelled":
        messages.success(request, f"Training run #{run.pk} is cancelled.")
    else:
        messages.info(request, f"Cancel requested: run #{run.pk} stops after its current step.")
    return redirect("modelops-run", run_id=run_id)


@admin_required
@require_GET
def compare(request):
    """Two versions on the same held-out set, with the quality gates of the candidate (b)."""
    a = get_object_or_404(ModelVersion, pk=request.GET.get("a") or 0)
    b = get_object_or_404(ModelVersion, pk=request.GET.get("b") or 0)
    with errors_as_messages(request, lambda exc: f"Not compared: {exc}."):
        comparison = services.compare_versions(a, b)
        reports = comparison["reports"]
        return render(
            request,
            "modelops/compare.html",
            {
                "a": a,
                "b": b,
                "reports": reports,
                "gates": selectors.gate_rows(comparison["gates"]),
                "gates_passed": comparison["gates_passed"],
                "rows": selectors.comparison_rows(reports),
                "classes": reports[1].get("classes", b.classes),
            },
        )
    return redirect("modelops-console")


@admin_required
@require_POST
def evaluate(request, version_id: int):
    """Evaluate a version on the shared held-out set (fills in its held-out figures)."""
    version = get_object_or_404(ModelVersion, pk=version_id)
    with errors_as_messages(request, lambda exc: f"Not evaluated: {exc}."):
        report = services.evaluate_on_holdout(version)
        messages.success(request, f"{version} evaluated on {report.get('n', '?')} held-out images.")
    return redirect("modelops-console")


@admin_required
@require_POST
def promote(request, version_id: int):
    version = get_object_or_404(ModelVersion, pk=version_id)
    with errors_as_messages(request, _not_promoted):
        services.promote_version(version, actor=request.user, override_reason=request.POST.get("override_reason", ""))
        messages.success(request, f"{version} is now the champion.")
        return redirect("modelops-console")
    # Refused: back to where the admin was, only if that is a page of this site (no open redirect).
    back = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return redirect(back if back and safe else "modelops-console")


def _not_promoted(exc: services.ModelOpsError) -> str:
    advice = " Give a written reason to override." if isinstance(exc, services.GatesFailed) else ""
    return f"Not promoted: {exc}.{advice}"


@admin_required
@require_POST
def rollback(request):
    with errors_as_messages(request):
        promotion = services.rollback_champion(actor=request.user)
        messages.success(request, f"Rolled back: {promotion.version} is the champion again.")
    return redirect("modelops-console")


@admin_required
@require_POST
def set_challenger(request, version_id: int):
    services.set_alias(get_object_or_404(ModelVersion, pk=version_id), "challenger", actor=request.user)
    return redirect("modelops-console")


@admin_required
@require_POST
def sync_registry(request):
    try:
        synced = services.sync_registry()
        messages.success(request, f"Re-synced {len(synced)} version(s) from MLflow.")
    except Exception as exc:
        messages.error(request, f"Sync failed: {exc}")
    return redirect("modelops-console")


@admin_required
@require_POST
def start_augmentation(request):
    form = AugmentationForm(request.POST)
    if form.is_valid():
        with errors_as_messages(request, lambda exc: f"Augmentation not started: {exc.details.get('fields', exc)}"):
            services.start_augmentation_job(**form.cleaned_data, actor=request.user)
    else:
        messages.error(request, f"Augmentation not started: {form.errors.as_text()}")
    return redirect("modelops-console")
