"""Reads of the tabular lab (writes are in services.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.text import slugify

from apps.jobs.models import JobStatus
from apps.tabular.errors import TabularError
from apps.tabular.forms import ALGORITHM_LABELS
from apps.tabular.models import TabularDataset, TabularExperiment, TabularModel, TabularPromotion


def list_datasets() -> QuerySet[TabularDataset]:
    return TabularDataset.objects.select_related("uploaded_by").defer("profile")


def get_dataset(pk: int) -> TabularDataset:
    try:
        return TabularDataset.objects.get(pk=pk)
    except TabularDataset.DoesNotExist:
        raise TabularError(f"no tabular dataset {pk}", code="not_found") from None


def list_experiments(dataset: TabularDataset | None = None) -> QuerySet[TabularExperiment]:
    rows = TabularExperiment.objects.select_related("dataset")
    return rows.filter(dataset=dataset) if dataset is not None else rows


def get_experiment(pk: int) -> TabularExperiment:
    try:
        return TabularExperiment.objects.select_related("dataset").get(pk=pk)
    except TabularExperiment.DoesNotExist:
        raise TabularError(f"no tabular experiment {pk}", code="not_found") from None


# --- live progress ----------------------------------------------------------------------------

FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def experiment_progress(experiment: TabularExperiment) -> dict[str, Any]:
    """The live state the experiment page shows (over the WebSocket, status.json as the fallback): status, the last progress event,
    the overall fraction done and a sentence (which algorithm, which grid point, folds done)."""
    p = experiment.progress or {}
    algorithms = list(experiment.config.get("algorithms", []))
    n = max(len(algorithms), 1)
    algorithm = p.get("algorithm")
    index = algorithms.index(algorithm) if algorithm in algorithms else None
    if experiment.status == JobStatus.SUCCEEDED or p.get("event") == "done":
        fraction, text = 1.0, "Done" if experiment.status == JobStatus.SUCCEEDED else "Saving the model…"
    elif experiment.status == JobStatus.QUEUED:
        fraction, text = 0.0, "Queued: waiting for a training worker…"
    elif index is None:
        fraction, text = 0.0, "Starting: reading and splitting the table…"
    else:
        label = ALGORITHM_LABELS.get(algorithm, algorithm)
        place = f"algorithm {index + 1} of {len(algorithms)}"
        if p.get("event") == "fold":
            points, folds = max(int(p.get("grid_points") or 1), 1), max(int(p.get("folds") or 1), 1)
            within = ((int(p["grid_point"]) - 1) * folds + int(p["folds_done"])) / (points * folds)
            text = (
                f"{label} ({place}): grid point {p['grid_point']} of {points}, {p['folds_done']} of {folds} folds done"
            )
        elif p.get("event") == "algorithm_done":
            within, text = 1.0, f"{label} ({place}) done"
        else:
            within = 0.0
            text = f"{label} ({place}): starting, {p.get('grid_points', '?')} grid points × {p.get('folds', '?')} folds"
        fraction = (index + within) / n
    if experiment.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        text = experiment.get_status_display()
    return {
        "id": experiment.pk,
        "status": experiment.status,
        "status_display": experiment.get_status_display(),
        "finished": experiment.status in FINISHED_STATUSES,
        "progress": p,
        "fraction": round(min(max(fraction, 0.0), 1.0), 4),
        "text": text,
        "error": experiment.error,
    }


# --- the registry ------------------------------------------------------------------------------


def model_name_for(dataset: TabularDataset) -> str:
    """The model name a dataset's experiments register under: its name as a slug."""
    return slugify(dataset.name)[:100].strip("-") or f"dataset-{dataset.pk}"


def registered_name_for(name: str) -> str:
    """The name in MLflow's registry (namespaced: the image models share it)."""
    return f"tabular-{name}"


def list_models() -> list[dict[str, Any]]:
    """One entry per model name: {name, registered_name, champion (TabularExperiment or None),
    versions (how many experiments are registered under it), latest_version}."""
    out = []
    for model in TabularModel.objects.select_related("champion", "champion__dataset"):
        versions = TabularExperiment.objects.filter(model_name=model.name, status=JobStatus.SUCCEEDED)
        latest = versions.order_by("-model_version").values_list("model_version", flat=True).first()
        out.append(
            {
                "name": model.name,
                "registered_name": model.registered_name,
                "champion": model.champion,
                "versions": versions.count(),
                "latest_version": latest,
                "updated_at": model.updated_at,
            }
        )
    return out


def get_model(name: str) -> TabularModel:
    try:
        return TabularModel.objects.select_related("champion").get(name=name)
    except TabularModel.DoesNotExist:
        raise TabularError(f"no tabular model {name!r}", code="not_found") from None


def get_champion(name: str) -> TabularExperiment:
    """The champion experiment of model `name`, or TabularError not_found."""
    # One query (the model, its champion and the champion's dataset joined): this runs on every
    # prediction request.
    model = TabularModel.objects.select_related("champion__dataset").filter(name=name).first()
    if model is None or model.champion_id is None:
        raise TabularError(f"tabular model {name!r} has no champion", code="not_found")
    return model.champion


def list_versions(name: str) -> QuerySet[TabularExperiment]:
    return TabularExperiment.objects.filter(model_name=name, status=JobStatus.SUCCEEDED).order_by("-model_version")


def list_promotions(name: str) -> QuerySet[TabularPromotion]:
    return TabularPromotion.objects.filter(model__name=name).select_related("experiment", "previous", "actor")


def gate_thresholds() -> dict[str, float]:
    return {
        "test_f1_macro_floor": float(settings.DEEPMED_TABULAR_GATE_F1_FLOOR),
        "test_roc_auc_floor": float(settings.DEEPMED_TABULAR_GATE_ROC_AUC_FLOOR),
        "cv_std_ceiling": float(settings.DEEPMED_TABULAR_GATE_CV_STD_CEILING),
    }


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value else None  # NaN: not a figure


def check_gates(experiment: TabularExperiment) -> list[dict[str, Any]]:
    """The promotion gates of `experiment`'s chosen pipeline, each {name, passed, value,
    threshold, detail}: test macro-F1 floor, test ROC-AUC floor, ceiling on the standard
    deviation of the CV score (scoring metric) across folds. A figure that is missing (the
    experiment did not succeed) fails its gate."""
    result = experiment.result or {}
    test = result.get("test") or {}
    chosen = (result.get("algorithms") or {}).get(experiment.chosen_algorithm) or {}
    limits = gate_thresholds()
    f1, auc, std = _number(test.get("f1_macro")), _number(test.get("roc_auc")), _number(chosen.get("cv_std"))
    scoring = result.get("scoring", "")
    return [
        {
            "name": "test_f1_macro_floor",
            "passed": f1 is not None and f1 >= limits["test_f1_macro_floor"],
            "value": None if f1 is None else round(f1, 4),
            "threshold": limits["test_f1_macro_floor"],
            "detail": "macro-F1 on the held-out test split",
        },
        {
            "name": "test_roc_auc_floor",
            "passed": auc is not None and auc >= limits["test_roc_auc_floor"],
            "value": None if auc is None else round(auc, 4),
            "threshold": limits["test_roc_auc_floor"],
            "detail": "ROC-AUC on the held-out test split",
        },
        {
            "name": "cv_std_ceiling",
            "passed": std is not None and std <= limits["cv_std_ceiling"],
            "value": None if std is None else round(std, 4),
            "threshold": limits["cv_std_ceiling"],
            "detail": f"standard deviation of the CV {scoring or 'score'} across folds",
        },
    ]
