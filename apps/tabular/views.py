"""HTML pages of the tabular lab. Thin: apps.tabular.services write (upload, start, predict: all
audited), selectors read; a refusal (TabularError) is shown on the form or as a message.

Admins: the lab (datasets, upload), a dataset's profile and run form, an experiment's live
progress (over the WebSocket the image runs use, polling status.json as the fallback:
static/js/tabular.js; the payload is selectors.experiment_progress), the comparison of its
algorithms. Physicians and admins: the risk form generated from a trained model's input schema,
and batch prediction of a CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.decorators import role_required
from apps.accounts.models import Role
from apps.jobs.models import JobStatus
from apps.jobs.services import cancel_job
from apps.tabular import selectors, services
from apps.tabular.errors import TabularError
from apps.tabular.forms import ALGORITHM_LABELS, SCORING_LABELS, BatchForm, ExperimentForm, RiskForm, UploadForm
from apps.tabular.models import TabularDataset, TabularExperiment
from deepmed_web.web_errors import add_form_error, errors_as_messages

lab_required = role_required(lambda user: user.role == Role.ADMIN, "The tabular lab is for administrators.")
risk_required = role_required(
    lambda user: user.role in (Role.PHYSICIAN, Role.ADMIN), "Risk predictions are for physicians and administrators."
)

PROFILE_PLOTS = ("missingness", "class_balance", "correlation")
EXPERIMENT_PLOTS = ("comparison", "roc", "pr", "confusion_matrix")


def _dataset(pk: int) -> TabularDataset:
    try:
        return selectors.get_dataset(pk)
    except TabularError:
        raise Http404("no such dataset") from None


def _experiment(pk: int) -> TabularExperiment:
    try:
        return selectors.get_experiment(pk)
    except TabularError:
        raise Http404("no such experiment") from None


# --- the lab: datasets ---------------------------------------------------------------------------


def _lab_page(request, form: UploadForm, status: int = 200):
    return render(
        request,
        "tabular/lab.html",
        {
            "form": form,
            "datasets": selectors.list_datasets()[:50],
            "experiments": selectors.list_experiments().select_related("started_by")[:20],
        },
        status=status,
    )


def _max_mb() -> float:
    return round(services.max_bytes() / (1024 * 1024), 1)


@lab_required
@require_GET
def lab(request):
    return _lab_page(request, UploadForm(max_mb=_max_mb()))


@lab_required
@require_POST
def upload(request):
    form = UploadForm(request.POST, request.FILES, max_mb=_max_mb())
    if not form.is_valid():
        return _lab_page(request, form, status=400)
    try:
        dataset = services.upload_dataset(
            actor=request.user,
            name=form.cleaned_data["name"],
            data=form.cleaned_data["file"],
            target=form.cleaned_data["target"].strip() or None,
        )
    except TabularError as exc:
        field = "target" if exc.code == "unknown_target" else "file"
        return _lab_page(request, form, status=add_form_error(form, exc, field))
    messages.success(request, f"Uploaded {dataset.name}: {dataset.rows} rows, {len(dataset.columns)} columns.")
    return redirect("tabular-dataset", pk=dataset.pk)


def _dataset_page(request, dataset: TabularDataset, form: ExperimentForm, status: int = 200):
    report = dataset.profile or {}
    target = report.get("target") or {}
    return render(
        request,
        "tabular/dataset.html",
        {
            "dataset": dataset,
            "report": report,
            "target": target,
            "columns": report.get("column_profiles", []),
            "plots": [p for p in PROFILE_PLOTS if p != "class_balance" or target.get("counts")],
            "form": form,
            "experiments": selectors.list_experiments(dataset)[:20],
        },
        status=status,
    )


@lab_required
@require_GET
def dataset_detail(request, pk: int):
    dataset = _dataset(pk)
    target = (dataset.profile.get("target") or {}).get("column")
    return _dataset_page(request, dataset, ExperimentForm(columns=dataset.columns, target=target))


@lab_required
@require_POST
def start(request, pk: int):
    dataset = _dataset(pk)
    form = ExperimentForm(request.POST, columns=dataset.columns)
    if not form.is_valid():
        return _dataset_page(request, dataset, form, status=400)
    try:
        experiment = services.start_experiment(actor=request.user, dataset=dataset, config=form.config())
    except TabularError as exc:
        return _dataset_page(request, dataset, form, status=add_form_error(form, exc))
    return redirect("tabular-experiment", pk=experiment.pk)


@lab_required
@require_GET
def dataset_plot(request, pk: int, name: str):
    """A profile plot as PNG, drawn once from the stored profile (cached by the file's sha256)."""
    from ml_core.tabular.profile import save_profile_plots

    dataset = _dataset(pk)
    if name not in PROFILE_PLOTS or not dataset.profile:
        raise Http404("no such plot")
    folder = Path(settings.MEDIA_ROOT) / "tabular" / "profile-plots" / f"{dataset.pk}-{dataset.sha256[:16]}"
    path = folder / f"{name}.png"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:  # drawn aside, moved in whole
            for drawn in save_profile_plots(dataset.profile, tmp):
                os.replace(drawn, folder / drawn.name)
    if not path.is_file():
        raise Http404("this table has no such plot")
    return FileResponse(path.open("rb"), content_type="image/png")


# --- the lab: experiments -------------------------------------------------------------------------


@lab_required
@require_GET
def experiment_detail(request, pk: int):
    experiment = _experiment(pk)
    result = experiment.result or {}
    return render(
        request,
        "tabular/experiment.html",
        {
            "experiment": experiment,
            "dataset": experiment.dataset,
            "payload": selectors.experiment_progress(experiment),
            "result": result,
            "test": _test_rows(result.get("test") or {}),
            "algorithm_names": [ALGORITHM_LABELS.get(a, a) for a in experiment.config.get("algorithms", [])],
            "chosen_label": ALGORITHM_LABELS.get(experiment.chosen_algorithm, experiment.chosen_algorithm),
            "scoring_label": SCORING_LABELS.get(experiment.config.get("scoring"), experiment.config.get("scoring")),
            "plots": [p for p in ("roc", "pr", "confusion_matrix") if _plot_path(experiment, p)],
        },
    )


@lab_required
@require_GET
def experiment_status(request, pk: int):
    return JsonResponse(selectors.experiment_progress(_experiment(pk)))


@lab_required
@require_POST
def experiment_cancel(request, pk: int):
    experiment = cancel_job(_experiment(pk), actor=request.user)
    if experiment.status == JobStatus.CANCELLED:
        messages.success(request, f"Experiment #{experiment.pk} is cancelled.")
    else:
        messages.info(request, f"Cancel requested: experiment #{experiment.pk} stops after its current fold.")
    return redirect("tabular-experiment", pk=pk)


TEST_METRICS = (
    ("accuracy", "accuracy", "max"),
    ("balanced_accuracy", "balanced accuracy", "max"),
    ("f1_macro", "macro-F1", "max"),
    ("f1_weighted", "weighted F1", "max"),
    ("precision_macro", "macro precision", "max"),
    ("recall_macro", "macro recall", "max"),
    ("roc_auc", "ROC-AUC", "max"),
    ("pr_auc", "PR-AUC", "max"),
    ("brier", "Brier score", "min"),
)


def _test_rows(test: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "name": name, "value": test.get(k)} for k, name, _ in TEST_METRICS if k in test]


def _metrics_file(experiment: TabularExperiment) -> dict[str, Any]:
    path = Path(experiment.model_dir) / "metrics.json" if experiment.model_dir else None
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}


def comparison_rows(experiment: TabularExperiment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(columns, rows): every algorithm's CV and test figures, ranked by the CV mean of the run's
    scoring (what chose the algorithm); each column's best value is marked (higher is better,
    except the Brier score, the CV spread and the time)."""
    scoring = experiment.config.get("scoring", "roc_auc")
    detail = _metrics_file(experiment).get("algorithms") or {}
    summary = (experiment.result or {}).get("algorithms") or {}
    columns = [
        {"key": "cv_mean", "name": f"CV {SCORING_LABELS.get(scoring, scoring)} (mean)", "best": "max"},
        {"key": "cv_std", "name": "CV standard deviation", "best": "min"},
        *({"key": f"test_{k}", "name": f"test {name}", "best": best} for k, name, best in TEST_METRICS),
        {"key": "seconds", "name": "seconds", "best": "min"},
    ]
    rows = []
    for name in summary or detail:
        full, short = detail.get(name) or {}, summary.get(name) or {}
        cv = (full.get("cv") or {}).get(scoring) or {}
        test = full.get("test") or {}
        values = {
            "cv_mean": cv.get("mean", short.get("cv_mean")),
            "cv_std": cv.get("std", short.get("cv_std")),
            **{f"test_{k}": test.get(k, short.get(f"test_{k}")) for k, _, _ in TEST_METRICS},
            "seconds": full.get("seconds", short.get("seconds")),
        }
        rows.append({"algorithm": name, "label": ALGORITHM_LABELS.get(name, name), "values": values,
                     "best_params": full.get("best_params", short.get("best_params", {})),
                     "chosen": name == experiment.chosen_algorithm})  # fmt: skip
    rows.sort(key=lambda r: -(r["values"]["cv_mean"] if r["values"]["cv_mean"] is not None else float("-inf")))
    for column in columns:
        present = [r["values"][column["key"]] for r in rows if r["values"][column["key"]] is not None]
        best = (max if column["best"] == "max" else min)(present) if len(present) > 1 else None
        for r in rows:
            value = r["values"][column["key"]]
            r.setdefault("cells", []).append({"value": value, "best": best is not None and value == best})
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return columns, rows


@lab_required
@require_GET
def compare(request, pk: int):
    experiment = _experiment(pk)
    if experiment.status != JobStatus.SUCCEEDED:
        messages.error(request, f"Experiment #{experiment.pk} has not finished: nothing to compare yet.")
        return redirect("tabular-experiment", pk=pk)
    columns, rows = comparison_rows(experiment)
    return render(
        request,
        "tabular/compare.html",
        {
            "experiment": experiment,
            "dataset": experiment.dataset,
            "columns": columns,
            "rows": rows,
            "scoring_label": SCORING_LABELS.get(experiment.config.get("scoring"), experiment.config.get("scoring")),
            "has_chart": _plot_path(experiment, "comparison") is not None,
            **promotion_context(experiment),
        },
    )


def _plot_path(experiment: TabularExperiment, name: str) -> Path | None:
    if name not in EXPERIMENT_PLOTS or not experiment.model_dir:
        return None
    path = Path(experiment.model_dir) / f"{name}.png"
    return path if path.is_file() else None


@lab_required
@require_GET
def experiment_plot(request, pk: int, name: str):
    path = _plot_path(_experiment(pk), name)
    if path is None:
        raise Http404("no such plot")
    return FileResponse(path.open("rb"), content_type="image/png")


# --- risk predictions (physicians and admins) ------------------------------------------------------


@risk_required
@require_GET
def risk_index(request):
    models = selectors.list_experiments().filter(status=JobStatus.SUCCEEDED).exclude(model_dir="")
    return render(request, "tabular/risk_index.html", {"models": models[:50], "algorithm_labels": ALGORITHM_LABELS})


def _model_or_redirect(request, experiment: TabularExperiment):
    try:
        return services.load_experiment_model(experiment)
    except TabularError as exc:
        messages.error(request, f"No risk form: {exc.message}.")
    except Exception as exc:  # a model directory that cannot be loaded safely (ModelFileError)
        messages.error(request, f"No risk form: the model could not be loaded ({type(exc).__name__}).")
    return None


def _risk_page(request, experiment, model, form, batch_form, *, result=None, batch=None, status=200):
    return render(
        request,
        "tabular/risk.html",
        {
            "experiment": experiment,
            "model": model,
            "manifest": model.manifest,
            "form": form,
            "batch_form": batch_form,
            "result": result,
            "prediction": (result or {}).get("predictions", [None])[0] if result else None,
            "batch": batch,
            "notice": services.NOTICE,
            "algorithm_label": ALGORITHM_LABELS.get(model.manifest.get("algorithm"), model.manifest.get("algorithm")),
        },
        status=status,
    )


@risk_required
@require_http_methods(["GET", "POST"])
def risk(request, pk: int):
    experiment = _experiment(pk)
    model = _model_or_redirect(request, experiment)
    if model is None:
        return redirect("tabular-risk-index")
    if request.method == "GET":
        return _risk_page(request, experiment, model, RiskForm(schema=model.schema), BatchForm())
    form = RiskForm(request.POST, schema=model.schema)
    if not form.is_valid():
        return _risk_page(request, experiment, model, form, BatchForm(), status=400)
    try:
        result = services.predict(actor=request.user, experiment=experiment, rows=form.row(), top=5)
    except TabularError as exc:
        if exc.code != "invalid_request":
            raise
        form.add_schema_errors(exc.details.get("errors", []))
        return _risk_page(request, experiment, model, form, BatchForm(), status=exc.http_status)
    return _risk_page(request, experiment, model, form, BatchForm(), result=result)


@risk_required
@require_POST
def risk_batch(request, pk: int):
    experiment = _experiment(pk)
    model = _model_or_redirect(request, experiment)
    if model is None:
        return redirect("tabular-risk-index")
    form = BatchForm(request.POST, request.FILES)
    if not form.is_valid():
        return _risk_page(request, experiment, model, RiskForm(schema=model.schema), form, status=400)
    try:
        result = services.predict_csv(actor=request.user, experiment=experiment, data=form.cleaned_data["file"])
    except TabularError as exc:
        if exc.code == "invalid_request":
            for error in exc.details.get("errors", [])[:20]:
                row = error.get("row")
                where = f"row {row + 1} (line {row + 2} of the file)" if isinstance(row, int) else "the file"
                form.add_error("file", f"{where}, column {error.get('field')!r}: {error.get('message')}")
        else:
            form.add_error("file", exc.message)
        return _risk_page(request, experiment, model, RiskForm(schema=model.schema), form, status=exc.http_status)
    if request.POST.get("format") == "csv":
        return _batch_csv(experiment, result)
    return _risk_page(request, experiment, model, RiskForm(schema=model.schema), BatchForm(), batch=result)


def _batch_csv(experiment: TabularExperiment, result: dict[str, Any]) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*result["columns"], "predicted_class", "predicted_label", "probability", "threshold",
                     "top_features", "model_algorithm", "model_sha256", "notice"])  # fmt: skip
    for row, p in zip(result["rows"], result["predictions"]):
        top = "; ".join(f"{f['feature']} {f['effect']:+.3f}" for f in p["top_features"])
        writer.writerow([*("" if row.get(c) is None else row.get(c) for c in result["columns"]), p["class"],
                         p["label"], p["probability"], p["threshold"], top, result["algorithm"],
                         result["model_sha256"], result["notice"]])  # fmt: skip
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="risk-predictions-experiment-{experiment.pk}.csv"'
    return response


# --- promotion to champion, rollback (services.promote_experiment / rollback_model) ----------------


def gate_rows(result: Any) -> tuple[list[dict[str, Any]], bool]:
    """selectors.check_gates' answer as table rows (name, passed, value, threshold, detail) and
    whether every gate passed."""
    if isinstance(result, dict) and "gates" in result:
        gates, passed = result["gates"], result.get("passed")
    else:
        gates, passed = result, None
    if isinstance(gates, dict):
        gates = [{"name": k, **(v if isinstance(v, dict) else {"passed": bool(v)})} for k, v in gates.items()]
    rows = [
        {
            "key": g.get("key") or g.get("name"),
            "name": g.get("label") or g.get("name") or g.get("key"),
            "passed": bool(g.get("passed")),
            "value": g.get("value"),
            "threshold": g.get("threshold"),
            "detail": g.get("detail", ""),
        }
        for g in (gates or [])
    ]
    return rows, bool(all(r["passed"] for r in rows) if passed is None else passed)


def promotion_context(experiment: TabularExperiment) -> dict[str, Any]:
    """The comparison page's promotion card: the gates and the buttons, once the registry exists."""
    check = getattr(selectors, "check_gates", None)
    if check is None or not hasattr(services, "promote_experiment"):
        return {"promotion_available": False}
    rows, passed = gate_rows(check(experiment))
    return {
        "promotion_available": True,
        "gates": rows,
        "gates_passed": passed,
        "model_name": model_name(experiment),
        "can_roll_back": hasattr(services, "rollback_model"),
    }


def model_name(experiment: TabularExperiment) -> str:
    return getattr(experiment, "model_name", "") or experiment.dataset.name


@lab_required
@require_POST
def promote(request, pk: int):
    experiment = _experiment(pk)
    with errors_as_messages(request, lambda exc: f"Not promoted: {exc.message}."):
        services.promote_experiment(
            actor=request.user, experiment=experiment, override_reason=request.POST.get("override_reason", "").strip()
        )
        messages.success(request, f"Experiment #{experiment.pk} ({experiment.chosen_algorithm}) is now the champion.")
    return redirect("tabular-compare", pk=pk)


@lab_required
@require_POST
def rollback(request, pk: int):
    experiment = _experiment(pk)
    with errors_as_messages(request, lambda exc: f"Not rolled back: {exc.message}."):
        services.rollback_model(actor=request.user, name=request.POST.get("name") or model_name(experiment))
        messages.success(request, "Rolled back: the previous champion is back.")
    return redirect("tabular-compare", pk=pk)
