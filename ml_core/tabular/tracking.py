"""MLflow for tabular runs, on ml_core.tracking's run handling (same server, same conventions).

One MLflow run per training: the configuration as params, every algorithm's CV mean/std and
test figures as metrics (``cv.<algorithm>.<metric>.mean``, ``test.<algorithm>.<metric>``), the
dataset sha256 and the chosen algorithm as tags, the quality/selection reports and the model
directory (with its plots) as artefacts; optionally the directory registered as a model version.
``track_tabular_run`` (what apps.tabular's worker calls) adds the dataset's profile, each
algorithm's grid-search results and the plots under ``plots/``, and returns the registered version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ml_core.tabular.artifacts import finite
from ml_core.tracking import RegisteredVersion, start_run

DEFAULT_EXPERIMENT = "deepmed-tabular"


def run_metrics(result) -> dict[str, Any]:
    """The numeric figures of a ``TabularResult`` as a nested dict (``TrackedRun.log_metrics`` flattens it)."""
    out: dict[str, Any] = {"cv": {}, "test": {}}
    for name, r in result.algorithms.items():
        out["cv"][name] = r["cv"]
        out["test"][name] = {k: v for k, v in r["test"].items() if k not in ("confusion_matrix", "threshold")}
        out.setdefault("seconds", {})[name] = r["seconds"]
    out["chosen_test"] = {k: v for k, v in result.test.items() if k not in ("confusion_matrix", "threshold")}
    out["total_seconds"] = result.timings.get("total_s", 0.0)
    return finite(out)


class TabularRun(NamedTuple):
    """What ``track_tabular_run`` returns: the MLflow run id and, when registered, the version."""

    run_id: str
    version: str | None


def log_tabular_run(
    tracking_uri: str | None,
    result,
    model_dir: str | Path | None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    register_as: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log a finished ``train()`` result (and its saved directory); returns the MLflow run id."""
    return track_tabular_run(
        tracking_uri, result, model_dir, experiment=experiment, register_as=register_as, alias=alias, tags=tags
    ).run_id


def track_tabular_run(
    tracking_uri: str | None,
    result,
    model_dir: str | Path | None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    register_as: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    profile: dict[str, Any] | None = None,
    run_name: str | None = None,
) -> TabularRun:
    """``log_tabular_run`` plus the dataset's profile (``dataset_profile.json``), each algorithm's
    CV results (``cv_results.json``) and the model directory's plots under ``plots/``; returns
    the run id and the registered version (None when not registered)."""
    all_tags = {
        "kind": "tabular",
        "dataset_sha256": result.dataset_sha256,
        "chosen_algorithm": result.chosen,
        "imbalance": result.imbalance["strategy"],
        **(tags or {}),
    }
    registered: RegisteredVersion | None = None
    name = run_name or f"tabular {result.chosen}"
    with start_run(tracking_uri, experiment=experiment, run_name=name, tags=all_tags) as run:
        flat = _flat_params(result.config)
        run.log_params(flat)
        run.log_metrics(run_metrics(result))
        run._mlflow.log_dict(finite(result.summary()), "summary.json", run_id=run.run_id)
        cv_results = {
            algo: {k: r.get(k) for k in ("best_params", "grid_points", "cv", "test", "seconds")}
            for algo, r in result.algorithms.items()
        }
        run._mlflow.log_dict(finite(cv_results), "cv_results.json", run_id=run.run_id)
        if profile is not None:
            run._mlflow.log_dict(finite(profile), "dataset_profile.json", run_id=run.run_id)
        if model_dir is not None:
            for plot in sorted(Path(model_dir).glob("*.png")):
                run.log_artifact(plot, "plots")
        if model_dir is not None and register_as:
            registered = run.register_package(model_dir, register_as, alias=alias)
            run._client.set_tag(run.run_id, "registered_version", registered.version)
        elif model_dir is not None:
            run.log_artifact(model_dir, "model")
    return TabularRun(run.run_id, registered.version if registered else None)


def _flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key in ("clean", "select"):
            out.update(_flat_params(value, f"{name}."))
        else:
            out[name] = value
    return out
