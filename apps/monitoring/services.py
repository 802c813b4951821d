"""Writes for monitoring: drift scores per window and the retraining-review mark."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.modelops.models import ModelVersion
from apps.modelops.selectors import get_challenger, get_champion
from apps.monitoring import selectors
from apps.monitoring.models import DriftScore, RetrainingReview
from ml_core.drift import DriftConfig, compute_drift

logger = logging.getLogger(__name__)


def drift_config() -> DriftConfig:
    return DriftConfig(threshold=settings.DEEPMED_DRIFT_THRESHOLD, min_samples=settings.DEEPMED_DRIFT_MIN_SAMPLES)


def compute_drift_score(version: ModelVersion, *, window_end: datetime | None = None) -> DriftScore | None:
    """Score the version's last DEEPMED_DRIFT_WINDOW_HOURS of predictions against its reference;
    store it, and mark the version for retraining review when it drifted. None without a reference."""
    found = selectors.drift_reference(version)
    if found is None:
        return None
    end = window_end or timezone.now()
    start = end - timezone.timedelta(hours=settings.DEEPMED_DRIFT_WINDOW_HOURS)
    window = selectors.prediction_window(version, start=start, end=end, after=found.baseline_end)
    config = drift_config()
    report = compute_drift(found.reference, window.labels, window.confidences, window.embedding_scores, config)
    with transaction.atomic():
        score = DriftScore.objects.create(
            model_version=version,
            window_start=start,
            window_end=end,
            n=report.n,
            label_psi=report.label_psi,
            confidence_ks=report.confidence_ks,
            embedding_ks=report.embedding_ks,
            components=report.components,
            score=None if math.isnan(report.score) else report.score,
            threshold=config.threshold,
            drifted=report.drifted,
            reference_source=found.reference.source,
        )
        if report.drifted:
            mark_for_retraining_review(score)
    return score


def mark_for_retraining_review(score: DriftScore) -> RetrainingReview:
    """Open a review for the score's version (one open review per version: later drifted
    windows update its reason instead of piling up)."""
    signals = ", ".join(
        f"{name} {value:.2f}" for name, value in sorted(score.components.items()) if value > score.threshold
    )
    reason = f"drift score {score.score:.2f} > {score.threshold:.2f} over {score.n} predictions ({signals})"
    review, created = RetrainingReview.objects.get_or_create(
        model_version=score.model_version, resolved_at=None, defaults={"drift_score": score, "reason": reason}
    )
    if not created:
        review.drift_score, review.reason = score, reason
        review.save(update_fields=["drift_score", "reason"])
    else:
        logger.warning("model %s marked for retraining review: %s", score.model_version, reason)
    return review


def resolve_retraining_review(review: RetrainingReview, *, actor=None, note: str = "") -> RetrainingReview:
    review.resolved_at = timezone.now()
    review.resolved_by = actor
    review.resolution_note = note
    review.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
    return review


def compute_drift_scores() -> list[DriftScore]:
    """One score per serving version (champion, and the challenger in shadow/canary)."""
    versions = [v for v in (get_champion(), get_challenger()) if v is not None]
    return [score for score in (compute_drift_score(v) for v in versions) if score is not None]
