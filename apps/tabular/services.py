"""Writes of the tabular lab. Reads are in selectors.py; the data science is ml_core.tabular."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from apps.accounts.models import Role
from apps.audit.models import Outcome
from apps.audit.services import record_event
from apps.jobs import selectors as job_selectors
from apps.jobs.models import JobStatus
from apps.jobs.services import (
    claim_job,
    enqueue_job,
    fail_job,
    finish_job,
    heartbeat_job,
    keep_alive,
    run_training_computation,
)
from apps.tabular import selectors
from apps.tabular.errors import TabularError
from apps.tabular.models import PromotionAction, TabularDataset, TabularExperiment, TabularModel, TabularPromotion
from ml_core.tabular.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_COLUMNS, DEFAULT_MAX_ROWS, TabularDataError, read_table
from ml_core.tabular.profile import profile

logger = logging.getLogger(__name__)


class ExperimentCancelled(Exception):
    """Raised from the progress callback once an admin asked the running experiment to stop."""


def _require_admin(actor, action: str) -> None:
    if actor is None or getattr(actor, "role", None) != Role.ADMIN:
        record_event(actor=actor, action=action, object_type="tabular", outcome=Outcome.DENIED,
                     detail={"reason": "admins only"}, patient=None)  # fmt: skip
        raise TabularError("only administrators use the tabular lab", code="forbidden")


def max_bytes() -> int:
    return int(getattr(settings, "DEEPMED_TABULAR_MAX_BYTES", DEFAULT_MAX_BYTES))


def upload_dataset(*, actor, name: str, data: bytes | BinaryIO, target: str | None = None) -> TabularDataset:
    """Parse, profile and store an uploaded CSV (admins only). Every refusal is a TabularError
    with the reader's code (empty_file, not_text, not_utf8, too_many_columns, ...) and leaves
    no row and no file behind; refusals are audited too."""
    _require_admin(actor, "tabular.dataset_upload")
    if not isinstance(data, bytes):
        data = data.read(max_bytes() + 1)  # no more than the limit (+1 to tell it was over) in memory
    name = (name or "").strip()[:120] or "dataset"
    try:
        table = read_table(
            data,
            max_bytes=max_bytes(),
            max_rows=int(getattr(settings, "DEEPMED_TABULAR_MAX_ROWS", DEFAULT_MAX_ROWS)),
            max_columns=int(getattr(settings, "DEEPMED_TABULAR_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)),
        )
        if target is not None and target not in table.frame.columns:
            raise TabularDataError("unknown_target", f"no column {target!r}")
        report = profile(table.frame, target)
    except TabularDataError as exc:
        record_event(actor=actor, action="tabular.dataset_upload", object_type="tabular.tabulardataset",
                     outcome=Outcome.INVALID, detail={"code": exc.code, "bytes": len(data)}, patient=None)  # fmt: skip
        raise TabularError.from_data_error(exc) from None
    dataset = TabularDataset(
        name=name,
        sha256=table.sha256,
        n_bytes=table.n_bytes,
        rows=len(table.frame),
        columns=[str(c) for c in table.frame.columns],
        encoding=table.encoding,
        delimiter=table.delimiter,
        notes=table.notes,
        profile=_strict_json(report),
        uploaded_by=actor,
    )
    try:
        with transaction.atomic():
            dataset.file.save(dataset_name(dataset), ContentFile(data), save=False)
            dataset.save()
            record_event(actor=actor, action="tabular.dataset_upload", obj=dataset, patient=None,
                         detail={"sha256": dataset.sha256, "rows": dataset.rows, "columns": len(dataset.columns)})  # fmt: skip
    except BaseException:
        if dataset.file.name:  # the row rolled back: the file must not stay behind either
            dataset.file.storage.delete(dataset.file.name)
        raise
    return dataset


def dataset_name(dataset: TabularDataset) -> str:
    return f"{dataset.sha256}.csv"


def _strict_json(obj):
    from ml_core.tabular.artifacts import finite

    return finite(obj)


# --- experiments (training runs on the `training` queue) -------------------------------------


def validate_experiment_config(dataset: TabularDataset, config: dict[str, Any]) -> dict[str, Any]:
    """The run's TrainConfig as a dict, or TabularError("invalid_config") naming the problem."""
    from ml_core.tabular.evaluate import SCORINGS
    from ml_core.tabular.models import ALGORITHM_NAMES
    from ml_core.tabular.train import TrainConfig

    try:
        cfg = TrainConfig.from_dict(dict(config or {}))
    except (TypeError, ValueError) as exc:
        raise TabularError(f"invalid configuration: {exc}", code="invalid_config") from None
    problems = []
    if cfg.target not in dataset.columns:
        problems.append(f"target {cfg.target!r} is not a column of {dataset.name!r}")
    if not cfg.algorithms or any(a not in ALGORITHM_NAMES for a in cfg.algorithms):
        problems.append(f"algorithms must be among {list(ALGORITHM_NAMES)}")
    if cfg.scoring not in SCORINGS:
        problems.append(f"scoring must be one of {list(SCORINGS)}")
    if cfg.grid not in ("full", "quick"):
        problems.append("grid must be 'full' or 'quick'")
    if not 0.05 <= cfg.test_size <= 0.5 or not 0.0 < cfg.decision_threshold < 1.0:
        problems.append("test_size must be in [0.05, 0.5] and the threshold in (0, 1)")
    if problems:
        raise TabularError("; ".join(problems), code="invalid_config", details={"problems": problems})
    return cfg.to_dict()


def start_experiment(*, actor, dataset: TabularDataset, config: dict[str, Any]) -> TabularExperiment:
    """Create a queued experiment and send it to the `training` queue once committed (admins only)."""
    _require_admin(actor, "tabular.experiment.start")
    params = validate_experiment_config(dataset, config)
    with transaction.atomic():
        experiment = TabularExperiment.objects.create(dataset=dataset, config=params, started_by=actor)
        record_event(actor=actor, action="tabular.experiment.start", obj=experiment, patient=None,
                     detail={"dataset": dataset.pk, "algorithms": params["algorithms"], "grid": params["grid"]})  # fmt: skip
        enqueue_job(experiment)
    return experiment


def model_root() -> Path:
    return Path(settings.DEEPMED_MODEL_DIR) / "tabular"


def execute_experiment(pk: int, *, worker: str = "") -> TabularExperiment | None:
    """The worker's side: claim, train with live progress, save the model directory, finish.
    None when there is nothing to run (finished, cancelled, a duplicate message)."""
    from ml_core.tabular.artifacts import finite, save_model
    from ml_core.tabular.cli import summarise
    from ml_core.tabular.io import read_table
    from ml_core.tabular.train import TrainConfig, train

    experiment = claim_job(TabularExperiment, pk, worker=worker)
    if experiment is None:
        return None
    cfg = TrainConfig.from_dict(experiment.config)

    def progress(event: dict[str, Any]) -> None:
        if job_selectors.stop_requested(experiment):
            raise ExperimentCancelled
        heartbeat_job(experiment, progress=finite(event))

    try:
        # keep_alive: a long fit between two progress events still shows a live worker to the sweeper.
        with keep_alive(experiment):
            with experiment.dataset.file.open("rb") as fh:
                table = read_table(fh.read(), max_bytes=max_bytes())
            result = run_training_computation(train, table.frame, cfg, progress=progress)
            result.dataset_sha256 = experiment.dataset.sha256
            out = save_model(result, model_root() / f"experiment-{experiment.pk}", name=experiment.dataset.name)
    except ExperimentCancelled:
        return finish_job(experiment, JobStatus.CANCELLED)
    except TabularDataError as exc:
        return fail_job(experiment, f"{exc.code}: {exc.message}")
    except Exception as exc:
        logger.exception("tabular experiment %s failed", experiment.pk)
        return fail_job(experiment, f"{type(exc).__name__}: {exc}")
    experiment.result = finite(summarise(result, out))
    experiment.chosen_algorithm = result.chosen
    experiment.model_dir = str(out)
    register_experiment(experiment)
    track_experiment(experiment, result, out)
    record_event(actor=None, action="tabular.experiment.finish", obj=experiment, patient=None,
                 detail={"chosen": result.chosen, "test_f1_macro": result.test["f1_macro"],
                         "model": experiment.model_name, "version": experiment.model_version,
                         "mlflow_run_id": experiment.mlflow_run_id})  # fmt: skip
    return finish_job(experiment, update_fields=["result", "chosen_algorithm", "model_dir", *REGISTRY_FIELDS])


# --- registry and MLflow ----------------------------------------------------------------------

REGISTRY_FIELDS = ("model_name", "model_version", "mlflow_run_id", "mlflow_version", "tracking_error")


def register_experiment(experiment: TabularExperiment) -> TabularExperiment:
    """Make a trained experiment the next version of the model named after its dataset (the
    TabularModel row is created with the first version). Sets the fields, the caller saves."""
    name = selectors.model_name_for(experiment.dataset)
    with transaction.atomic():
        model, _ = TabularModel.objects.select_for_update().get_or_create(
            name=name, defaults={"registered_name": selectors.registered_name_for(name)}
        )
        latest = TabularExperiment.objects.filter(model_name=name).exclude(pk=experiment.pk)
        latest = latest.order_by("-model_version").values_list("model_version", flat=True).first()
        experiment.model_name, experiment.model_version = name, (latest or 0) + 1
        TabularExperiment.objects.filter(pk=experiment.pk).update(model_name=name, model_version=(latest or 0) + 1)
    return experiment


def track_experiment(experiment: TabularExperiment, result, model_dir: Path) -> TabularExperiment:
    """Log the experiment as one MLflow run (params, each algorithm's CV results, test metrics,
    plots, the dataset's sha256 and profile) and register its model directory as a version of
    `tabular-<name>`. Best effort: a failure is logged as a warning and kept in
    `tracking_error` (and result["tracking"]), the experiment still succeeds."""
    if not getattr(settings, "DEEPMED_TABULAR_TRACKING", True):
        experiment.result = {**experiment.result, "tracking": {"logged": False, "reason": "disabled"}}
        return experiment
    from ml_core.tabular.tracking import track_tabular_run

    model = TabularModel.objects.get(name=experiment.model_name)
    try:
        run = track_tabular_run(
            settings.MLFLOW_TRACKING_URI,
            result,
            model_dir,
            experiment=getattr(settings, "DEEPMED_TABULAR_MLFLOW_EXPERIMENT", "deepmed-tabular"),
            register_as=model.registered_name,
            tags={
                "deepmed.experiment": str(experiment.pk),
                "deepmed.dataset": str(experiment.dataset_id),
                "deepmed.model_name": experiment.model_name,
                "deepmed.model_version": str(experiment.model_version),
            },
            profile=experiment.dataset.profile,
            run_name=f"tabular experiment {experiment.pk} ({result.chosen})",
        )
    except Exception as exc:  # MLflow down, a store error...: the trained model stays usable
        logger.warning("tabular experiment %s: MLflow tracking failed: %s", experiment.pk, exc, exc_info=True)
        experiment.tracking_error = f"{type(exc).__name__}: {exc}"[:2000]
        experiment.result = {**experiment.result, "tracking": {"logged": False, "error": experiment.tracking_error}}
        return experiment
    experiment.mlflow_run_id, experiment.mlflow_version = run.run_id, run.version or ""
    experiment.result = {
        **experiment.result,
        "tracking": {"logged": True, "run_id": run.run_id, "registered_name": model.registered_name,
                     "mlflow_version": run.version},
    }  # fmt: skip
    return experiment


def _mirror_champion_to_mlflow(model: TabularModel, experiment: TabularExperiment | None) -> str:
    """Point MLflow's `champion` alias of the model at the experiment's registered version (or
    remove it); best effort, returns the error text ('' when it worked or there was nothing to do)."""
    if not getattr(settings, "DEEPMED_TABULAR_TRACKING", True):
        return ""
    from ml_core import tracking

    try:
        if experiment is not None and experiment.mlflow_version:
            tracking.set_alias(
                settings.MLFLOW_TRACKING_URI, model.registered_name, experiment.mlflow_version, "champion"
            )
        elif TabularExperiment.objects.filter(model_name=model.name).exclude(mlflow_version="").exists():
            tracking.delete_alias(settings.MLFLOW_TRACKING_URI, model.registered_name, "champion")
    except Exception as exc:
        logger.warning("tabular model %s: MLflow alias not moved: %s", model.name, exc)
        return f"{type(exc).__name__}: {exc}"[:500]
    return ""


def promote_experiment(*, actor, experiment: TabularExperiment, override_reason: str = "") -> TabularPromotion:
    """Make a succeeded experiment the champion of its model name (admins only). Failing gates
    (selectors.check_gates) refuse it with TabularError gates_failed (409, details.failed_gates)
    unless a written override reason is given; every attempt is audited and every move leaves a
    TabularPromotion row. The MLflow `champion` alias follows (best effort)."""
    _require_admin(actor, "tabular.model.promote")
    experiment = TabularExperiment.objects.select_related("dataset").get(pk=experiment.pk)
    if experiment.status != JobStatus.SUCCEEDED or not experiment.model_name:
        raise TabularError(
            f"experiment {experiment.pk} has no registered model to promote", code="model_not_ready", http_status=409
        )
    gates = selectors.check_gates(experiment)
    failed = [g for g in gates if not g["passed"]]
    override_reason = (override_reason or "").strip()
    if failed and not override_reason:
        record_event(actor=actor, action="tabular.model.promote", obj=experiment, outcome=Outcome.DENIED,
                     patient=None, detail={"model": experiment.model_name, "failed_gates": failed})  # fmt: skip
        names = ", ".join(g["name"] for g in failed)
        raise TabularError(
            f"quality gates failed: {names} (an override needs a written reason)",
            code="gates_failed",
            http_status=409,
            details={"failed_gates": failed},
        )
    with transaction.atomic():
        model = TabularModel.objects.select_for_update().get(name=experiment.model_name)
        previous = model.champion
        if previous is not None and previous.pk == experiment.pk:
            raise TabularError(
                f"experiment {experiment.pk} is already the champion of {model.name}", code="already_champion",
                http_status=409,
            )  # fmt: skip
        model.champion = experiment
        model.save(update_fields=["champion", "updated_at"])
        promotion = TabularPromotion.objects.create(
            model=model,
            action=PromotionAction.PROMOTE,
            experiment=experiment,
            previous=previous,
            gates=gates,
            override_reason=override_reason if failed else "",
            actor=actor,
        )
        record_event(
            actor=actor,
            action="tabular.model.promote.override" if failed else "tabular.model.promote",
            obj=experiment,
            patient=None,
            detail={"model": model.name, "version": experiment.model_version,
                    "previous": previous.pk if previous else None, "override_reason": promotion.override_reason,
                    "failed_gates": [g["name"] for g in failed]},
        )  # fmt: skip
    _mirror_champion_to_mlflow(model, experiment)
    return promotion


def rollback_model(*, actor, name: str) -> TabularPromotion:
    """Give model `name`'s champion back to the experiment that held it before the current
    champion was promoted (admins only, audited). TabularError nothing_to_roll_back (409) when
    there is no previous champion."""
    _require_admin(actor, "tabular.model.rollback")
    with transaction.atomic():
        model = TabularModel.objects.select_for_update().filter(name=name).first()
        if model is None:
            raise TabularError(f"no tabular model {name!r}", code="not_found")
        current = model.champion
        last = (
            model.promotions.filter(action=PromotionAction.PROMOTE, experiment=current).exclude(previous=None).first()
            if current is not None
            else None
        )
        if last is None:
            raise TabularError(
                f"tabular model {name!r} has no previous champion to roll back to",
                code="nothing_to_roll_back",
                http_status=409,
            )
        target = last.previous
        model.champion = target
        model.save(update_fields=["champion", "updated_at"])
        promotion = TabularPromotion.objects.create(
            model=model, action=PromotionAction.ROLLBACK, experiment=target, previous=current, actor=actor
        )
        record_event(actor=actor, action="tabular.model.rollback", obj=target, patient=None,
                     detail={"model": model.name, "from": current.pk, "to": target.pk,
                             "version": target.model_version})  # fmt: skip
    _mirror_champion_to_mlflow(model, target)
    return promotion


# --- predictions (physicians and admins) -------------------------------------------------------

NOTICE = "Preliminary, not a diagnosis: a model estimate for a clinician to weigh with the whole picture."


MODEL_FILES = ("model.skops", "manifest.json", "schema.json")  # what load_model reads


@functools.lru_cache(maxsize=8)
def _load(path: str, version: tuple):
    from ml_core.tabular.artifacts import load_model

    return load_model(path)  # sha256 and type allowlist checked once per version of the files


def model_files_version(model_dir: str | Path) -> tuple:
    """What the loaded-model cache is keyed by: inode, size, mtime and ctime of every file
    load_model reads (None for a missing one, which load_model then refuses). Any rewrite or
    replacement of one of them, even one that keeps the mtime (cp -p, rsync -t), changes the
    ctime, so a changed file is loaded and its sha256 checked again, never served from the
    cache; a few stat calls instead of hashing the file on every request."""
    out = []
    for name in MODEL_FILES:
        try:
            st = (Path(model_dir) / name).stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def load_experiment_model(experiment: TabularExperiment):
    """The experiment's model, loaded (and verified: sha256, type allowlist) once per version of
    its files and kept in memory: one-row predictions must not re-read a megabyte model."""
    if experiment.status != JobStatus.SUCCEEDED or not experiment.model_dir:
        raise TabularError(f"experiment {experiment.pk} has no trained model", code="model_not_ready", http_status=409)
    return _load(str(experiment.model_dir), model_files_version(experiment.model_dir))


def predict(*, actor, experiment: TabularExperiment, rows: list[dict[str, Any]] | dict[str, Any], top: int = 3) -> dict:
    """Risk predictions for JSON rows (physicians and admins; every call audited). A row that does
    not fit the model's input schema is refused as invalid_request naming the row and field."""
    from ml_core.tabular.schema import SchemaError

    if actor is None or getattr(actor, "role", None) not in (Role.PHYSICIAN, Role.ADMIN):
        record_event(actor=actor, action="tabular.predict", obj=experiment, outcome=Outcome.DENIED, patient=None)
        raise TabularError("only physicians and administrators request risk predictions", code="forbidden")
    rows = _as_rows(actor, experiment, rows)
    model = load_experiment_model(experiment)
    try:
        predictions = model.predict(rows, top=top)
    except SchemaError as exc:
        record_event(actor=actor, action="tabular.predict", obj=experiment, outcome=Outcome.INVALID, patient=None,
                     detail={"field": exc.field, "code": exc.code})  # fmt: skip
        raise TabularError(
            str(exc), code="invalid_request", details={"field": exc.field, "errors": exc.errors}
        ) from None
    record_event(actor=actor, action="tabular.predict", obj=experiment, patient=None,
                 detail={"rows": len(predictions), "classes": [p["class"] for p in predictions][:100]})  # fmt: skip
    return {
        "experiment": experiment.pk,
        "algorithm": model.manifest["algorithm"],
        "model_sha256": model.manifest["model_sha256"],
        "predictions": predictions,
        "notice": NOTICE,
    }


def _as_rows(actor, experiment: TabularExperiment, rows) -> list[dict[str, Any]]:
    """One row (a dict) or a non-empty list of dicts, at most DEEPMED_TABULAR_BATCH_MAX_ROWS;
    anything else (an API body of the wrong shape) is invalid_request, audited."""
    if isinstance(rows, dict):
        return [rows]
    limit = int(getattr(settings, "DEEPMED_TABULAR_BATCH_MAX_ROWS", BATCH_MAX_ROWS))
    problem = None
    if not isinstance(rows, list) or not rows:
        problem = ("rows", "send one row (an object) or a non-empty list of rows")
    elif len(rows) > limit:
        problem = ("rows", f"at most {limit} rows per request")
    else:
        bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
        if bad is not None:
            problem = (f"rows[{bad}]", f"row {bad} is not an object")
    if problem is None:
        return rows
    record_event(actor=actor, action="tabular.predict", obj=experiment, outcome=Outcome.INVALID, patient=None,
                 detail={"field": problem[0], "code": "not_rows"})  # fmt: skip
    raise TabularError(problem[1], code="invalid_request", details={"field": problem[0], "errors": []})


# --- batch CSV predictions (the risk page's "predict a CSV"; added with the lab's HTML pages) ----

BATCH_MAX_ROWS = 1000


def predict_csv(*, actor, experiment: TabularExperiment, data: bytes | BinaryIO, top: int = 3) -> dict:
    """Risk predictions for every row of an uploaded CSV, through `predict` (same roles, same
    schema checks, audited). A file that does not parse, or has more than BATCH_MAX_ROWS rows,
    is a TabularError with the reader's code; the answer is predict's plus the input `rows`."""
    if actor is None or getattr(actor, "role", None) not in (Role.PHYSICIAN, Role.ADMIN):
        return predict(actor=actor, experiment=experiment, rows=[])  # refused (and audited) there
    if not isinstance(data, bytes):
        data = data.read(max_bytes() + 1)
    limit = int(getattr(settings, "DEEPMED_TABULAR_BATCH_MAX_ROWS", BATCH_MAX_ROWS))
    try:
        table = read_table(data, max_bytes=max_bytes(), max_rows=limit)
    except TabularDataError as exc:
        record_event(actor=actor, action="tabular.predict", obj=experiment, outcome=Outcome.INVALID, patient=None,
                     detail={"code": exc.code, "batch": True})  # fmt: skip
        raise TabularError.from_data_error(exc) from None
    frame = table.frame.rename(columns=str)
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    out = predict(actor=actor, experiment=experiment, rows=rows, top=top)
    return {**out, "rows": rows, "columns": list(frame.columns)}
