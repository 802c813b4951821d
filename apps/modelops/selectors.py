"""Reads for model operations: deployed versions, training data preview, retraining queue,
shadow agreement."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from apps.modelops.models import Alias, AugmentationJob, ModelVersion, TrainingRun, Trigger
from apps.review.models import Review
from apps.review.selectors import new_samples, training_samples  # the samples' owner decides which train
from apps.studies.models import Prediction

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def get_champion() -> ModelVersion | None:
    """The deployed model version, or None when nothing is deployed."""
    return ModelVersion.objects.filter(alias=Alias.CHAMPION, status="ready").first()


def get_challenger() -> ModelVersion | None:
    return ModelVersion.objects.filter(alias=Alias.CHALLENGER, status="ready").first()


def get_champion_and_challenger() -> tuple[ModelVersion | None, ModelVersion | None]:
    """(get_champion(), get_challenger()) in one query (the inference task asks at every study)."""
    ready = ModelVersion.objects.filter(alias__in=[Alias.CHAMPION, Alias.CHALLENGER], status="ready")
    champion = challenger = None
    for version in ready:  # newest first (Meta.ordering), as .first() picks
        if version.alias == Alias.CHAMPION and champion is None:
            champion = version
        elif version.alias == Alias.CHALLENGER and challenger is None:
            challenger = version
    return champion, challenger


def list_versions() -> list[ModelVersion]:
    return list(ModelVersion.objects.select_related("created_by").order_by("-created_at", "-pk"))


def holdout_dir() -> Path:
    """The held-out set every version is evaluated on: the base dataset's `test` split."""
    folder = Path(settings.DEEPMED_BASE_DATASET_DIR) / "test"
    if not folder.is_dir():
        raise FileNotFoundError(f"no held-out set at {folder} (DEEPMED_BASE_DATASET_DIR)")
    return folder


def holdout_fingerprint(folder: Path) -> str:
    """Cheap identity of the held-out set (names + sizes): cached evaluations stay valid while it holds."""
    import hashlib

    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(folder)}:{f.stat().st_size}\n".encode())
    return digest.hexdigest()


def _base_class_counts(split: str = "train") -> dict[str, int]:
    folder = Path(settings.DEEPMED_BASE_DATASET_DIR) / split
    if not folder.is_dir():
        return {}
    return {
        d.name: sum(1 for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }


def class_image_paths(label: str, split: str = "train") -> list[Path]:
    folder = Path(settings.DEEPMED_BASE_DATASET_DIR) / split / label
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _count_by_label(samples) -> dict[str, int]:
    return dict(samples.order_by().values("label").annotate(n=Count("pk", distinct=True)).values_list("label", "n"))


def dataset_preview() -> dict[str, Any]:
    """Class counts of what a run started now would train on (base train split + physician labels)."""
    base = _base_class_counts()
    physician = _count_by_label(training_samples())
    augmented: dict[str, int] = {}
    for job in AugmentationJob.objects.filter(status="succeeded"):
        augmented[job.label] = augmented.get(job.label, 0) + sum(1 for _ in Path(job.output_dir).glob("*.png"))
    labels = sorted(set(base) | set(physician) | set(augmented))
    total = {c: base.get(c, 0) + physician.get(c, 0) + augmented.get(c, 0) for c in labels}
    return {
        "base_dir": str(settings.DEEPMED_BASE_DATASET_DIR),
        "base_counts": base,
        "physician_counts": physician,
        "augmented_counts": augmented,
        "class_counts": total,
        "rows": [
            {
                "label": c,
                "base": base.get(c, 0),
                "physician": physician.get(c, 0),
                "augmented": augmented.get(c, 0),
                "total": n,
            }
            for c, n in total.items()
        ],
        "physician_labels": sum(physician.values()),
        "new_physician_labels": new_samples().count(),
    }


def physician_agreement(version: ModelVersion | None, *, since: datetime | None = None) -> dict[str, Any]:
    """How often `version`'s predictions matched the physician's latest final label."""
    if version is None:
        return {"reviews": 0, "agreed": 0, "rate": None}
    latest = Review.objects.filter(study=OuterRef("study")).exclude(final_label="").order_by("-version", "-created_at")
    predictions = Prediction.objects.filter(model_version=version).annotate(
        final=Subquery(latest.values("final_label")[:1])
    )
    predictions = predictions.exclude(final=None)
    if since is not None:
        predictions = predictions.filter(created_at__gte=since)
    pairs = list(predictions.values_list("label", "final"))
    agreed = sum(1 for label, final in pairs if label == final)
    return {"reviews": len(pairs), "agreed": agreed, "rate": agreed / len(pairs) if pairs else None}


def shadow_agreement(challenger: ModelVersion | None) -> dict[str, Any]:
    """Challenger vs champion on the same studies (shadow or canary), and each vs physicians."""
    if challenger is None:
        return {"studies": 0, "agreed": 0, "rate": None}
    mine = Prediction.objects.filter(model_version=challenger)
    other = Prediction.objects.filter(study=OuterRef("study")).exclude(role=OuterRef("role"))
    pairs = list(
        mine.annotate(other=Subquery(other.values("label")[:1])).exclude(other=None).values_list("label", "other")
    )
    agreed = sum(1 for a, b in pairs if a == b)
    return {"studies": len(pairs), "agreed": agreed, "rate": agreed / len(pairs) if pairs else None}


def retraining_queue() -> dict[str, Any]:
    """What the retraining trigger looks at (also GET /api/v1/retraining-queue)."""
    since = timezone.now() - timezone.timedelta(days=settings.DEEPMED_RETRAIN_AGREEMENT_WINDOW_DAYS)
    queue = new_samples()
    counts = _count_by_label(queue)
    last_auto = TrainingRun.objects.exclude(trigger=Trigger.MANUAL).first()
    last_training = TrainingRun.objects.filter(status="succeeded").first()
    return {
        "new_labels": sum(counts.values()),
        "counts_by_label": counts,
        "threshold": settings.DEEPMED_RETRAIN_LABEL_THRESHOLD,
        "champion_agreement": {
            **physician_agreement(get_champion(), since=since),
            "since": since,
            "floor": settings.DEEPMED_RETRAIN_AGREEMENT_FLOOR,
            "min_reviews": settings.DEEPMED_RETRAIN_AGREEMENT_MIN_REVIEWS,
        },
        "last_training_at": last_training.created_at if last_training else None,
        "last_trigger": None
        if last_auto is None
        else {
            "run_id": last_auto.pk,
            "trigger": last_auto.trigger,
            "reason": last_auto.trigger_reason,
            "at": last_auto.created_at,
            "status": last_auto.status,
        },
    }


def active_runs():
    return TrainingRun.objects.filter(Q(status="queued") | Q(status="running"))


# --- what the console pages show ----------------------------------------------------------


def run_timing(run: TrainingRun, *, now: datetime | None = None) -> dict[str, Any]:
    """The run page's progress bar: `state` (queued, waiting_first_epoch, training, evaluating,
    or the finished status), `fraction` done (0–1, from epochs and steps), `elapsed_s` since the
    worker started it, and `eta_s`, the time left estimated from the pace so far (None until
    there is progress to judge by, and once finished)."""
    now = now or timezone.now()
    progress = run.progress or {}
    epochs = int(progress.get("epochs") or 0)
    epoch = int(progress.get("epoch") or 0)
    steps = int(progress.get("steps_per_epoch") or 0)
    step = int(progress.get("step") or 0)
    finished = run.finished_at is not None
    fraction = 0.0
    if epochs:
        if progress.get("phase") in ("epoch", "evaluating", "packaging") or not steps:
            fraction = epoch / epochs
        else:
            fraction = ((epoch - 1) + min(step, steps) / steps) / epochs
    fraction = 1.0 if run.status == "succeeded" else min(1.0, max(0.0, fraction))
    start = run.started_at
    end = run.finished_at or now
    elapsed = (end - start).total_seconds() if start else 0.0
    if finished:
        state = run.status
    elif run.status == "queued" or start is None:
        state = "queued"
    elif progress.get("phase") in ("evaluating", "packaging"):
        state = "evaluating"
    elif not progress.get("history"):
        state = "waiting_first_epoch"
    else:
        state = "training"
    eta = None
    if not finished and start is not None and 0 < fraction < 1:
        eta = round(elapsed / fraction * (1 - fraction))
    return {"state": state, "fraction": round(fraction, 4), "elapsed_s": round(elapsed), "eta_s": eta}


# Which way is better, per comparison row: +1 higher, -1 lower, 0 neither (a count).
_METRIC_DIRECTION = {"macro_f1": 1, "accuracy": 1, "recall": 1, "latency": -1, "ece": -1, "n": 0}


def comparison_rows(reports: list[dict]) -> list[dict[str, Any]]:
    """The comparison table of two evaluation reports (A, B): per metric A's and B's value,
    the difference B − A, and which one is better ("a", "b" or "" when equal, missing or
    neither way is better)."""
    rows: list[tuple[str, str, list]] = [
        ("macro-F1", "macro_f1", [r.get("macro_f1") for r in reports]),
        ("accuracy", "accuracy", [r.get("accuracy") for r in reports]),
    ]
    for cls in reports[1].get("per_class_recall", {}):
        rows.append((f"recall {cls}", "recall", [r.get("per_class_recall", {}).get(cls) for r in reports]))
    for cls in reports[1].get("roc") or {}:
        values = [((r.get("roc") or {}).get(cls) or {}).get("auc") for r in reports]
        if any(v is not None for v in values):
            rows.append((f"AUC {cls}", "recall", values))  # higher is better, as recall
    for key in ("p50", "p95"):
        rows.append((f"latency {key} (ms)", "latency", [r.get("latency_ms", {}).get(key) for r in reports]))
    rows.append(("ECE (calibration)", "ece", [r.get("calibration", {}).get("ece") for r in reports]))
    rows.append(("held-out images", "n", [r.get("n") for r in reports]))
    table = []
    for name, kind, (a, b) in rows:
        diff = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        direction = _METRIC_DIRECTION[kind]
        better = ""
        if diff and direction:
            better = "b" if diff * direction > 0 else "a"
        table.append({"name": name, "a": a, "b": b, "diff": diff, "better": better})
    return table


GATE_NAMES = {
    "macro_f1_floor": "Macro-F1 floor",
    "macro_f1_vs_champion": "Macro-F1 against the champion",
    "class_recall_floor": "Recall of every class",
    "onnx_parity": "ONNX export matches PyTorch",
    "p95_latency_ms": "p95 latency (ms)",
    "ood_calibrated": "Out-of-distribution gate calibrated",
}


def readable_value(value: Any) -> str:
    """A gate's value or threshold in words and numbers: no Python dicts, lists or True/False."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {readable_value(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(readable_value(v) for v in value) or "—"
    return str(value)


def gate_rows(gates) -> list[dict[str, Any]]:
    """Quality gates (services.GateResult) as the comparison page shows them."""
    return [
        {
            "key": g.name,
            "name": GATE_NAMES.get(g.name, g.name.replace("_", " ")),
            "passed": g.passed,
            "value": readable_value(g.value),
            "threshold": readable_value(g.threshold),
            "detail": g.detail,
        }
        for g in gates
    ]


def held_out_summary(version: ModelVersion) -> dict[str, Any]:
    """The version's held-out figures for the console: from its evaluation on the shared held-out
    set when there is one (source "shared"), else from its package's own test split ("package"),
    else nothing (source "")."""
    for source, figures in (("shared", version.evaluation or {}), ("package", version.metrics or {})):
        if figures.get("macro_f1") is not None:
            latency = figures.get("latency_ms") or {}
            return {
                "source": source,
                "macro_f1": figures.get("macro_f1"),
                "accuracy": figures.get("accuracy"),
                "p95_ms": latency.get("p95") if isinstance(latency, dict) else None,
                "n": figures.get("n"),
            }
    return {"source": ""}


def augmentation_classes() -> list[str]:
    """The classes an augmentation job may target: the champion model's, else the base set's."""
    champion = get_champion()
    if champion is not None and champion.classes:
        return list(champion.classes)
    return list(_base_class_counts())
