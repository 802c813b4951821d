"""The automatic retraining trigger (beat task): enough new labels, or low agreement."""

from __future__ import annotations

from django.conf import settings

from apps.modelops import selectors
from apps.modelops.models import TrainingRun, Trigger
from apps.modelops.services.training import start_training_run


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
