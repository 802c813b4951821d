"""Reads for monitoring: drift references and windows, latest scores, open retraining reviews."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Max

from apps.modelops.models import ModelVersion
from apps.monitoring.models import DriftScore, RetrainingReview
from apps.studies.models import Prediction
from ml_core.drift import DriftReference, build_reference

logger = logging.getLogger(__name__)


@dataclass
class PredictionWindow:
    labels: list[str]
    confidences: list[float]
    embedding_scores: list[float]  # OOD Mahalanobis distance of each image's pooled embedding
    start: datetime | None
    end: datetime | None


def _predictions(version: ModelVersion):
    return Prediction.objects.filter(model_version=version).order_by("created_at", "pk")


def _window(rows: list[tuple]) -> PredictionWindow:
    return PredictionWindow(
        labels=[label for label, _, _, _ in rows],
        confidences=[conf for _, conf, _, _ in rows],
        embedding_scores=[ood for _, _, ood, _ in rows if ood is not None],
        start=rows[0][3] if rows else None,
        end=rows[-1][3] if rows else None,
    )


@dataclass
class VersionReference:
    reference: DriftReference
    baseline_end: datetime | None  # first-window references: later windows start after it


def drift_reference(version: ModelVersion) -> VersionReference | None:
    """The version's training reference: `extra["drift_reference"]` in its package.json when
    training wrote one (ml_core.drift.build_reference on the validation split); otherwise its
    first DEEPMED_DRIFT_REFERENCE_SIZE production predictions. None until either exists."""
    from ml_core.package import load_package_meta

    try:
        stored = load_package_meta(version.package_uri).extra.get("drift_reference")
    except Exception:
        logger.debug("no package metadata for %s", version, exc_info=True)
        stored = None
    if stored:
        return VersionReference(DriftReference.from_dict(stored), baseline_end=None)
    size = settings.DEEPMED_DRIFT_REFERENCE_SIZE
    rows = list(_predictions(version).values_list("label", "confidence", "ood_score", "created_at")[:size])
    if len(rows) < size:
        return None
    first = _window(rows)
    reference = build_reference(
        first.labels, first.confidences, version.classes, first.embedding_scores, source="first_window"
    )
    return VersionReference(reference, baseline_end=first.end)


def prediction_window(
    version: ModelVersion, *, start: datetime, end: datetime, after: datetime | None = None
) -> PredictionWindow:
    """The version's predictions made in [start, end) (and after `after`, when given)."""
    predictions = _predictions(version).filter(created_at__gte=start, created_at__lt=end)
    if after is not None:
        predictions = predictions.filter(created_at__gt=after)
    return _window(list(predictions.values_list("label", "confidence", "ood_score", "created_at")))


def latest_drift_scores() -> list[DriftScore]:
    """The most recent score of each model version."""
    latest = DriftScore.objects.values("model_version").annotate(last=Max("pk")).values_list("last", flat=True)
    return list(DriftScore.objects.filter(pk__in=list(latest)).select_related("model_version"))


def drift_history(version: ModelVersion, *, limit: int = 100) -> list[DriftScore]:
    return list(DriftScore.objects.filter(model_version=version)[:limit])


def open_retraining_reviews() -> list[RetrainingReview]:
    """Model versions marked for retraining review by drift, not yet resolved (for modelops)."""
    return list(RetrainingReview.objects.filter(resolved_at=None).select_related("model_version", "drift_score"))


def needs_retraining_review(version: ModelVersion) -> bool:
    return RetrainingReview.objects.filter(model_version=version, resolved_at=None).exists()
