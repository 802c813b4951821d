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
