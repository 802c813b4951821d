"""Prometheus gauges read from the database (and Redis) at scrape time, so every web
replica reports the same figures: drift, open retraining reviews, physician agreement,
Celery queue depth. Served at /metrics with django-prometheus' registry."""

from __future__ import annotations

import logging

from prometheus_client.core import REGISTRY, GaugeMetricFamily

logger = logging.getLogger(__name__)
_registered = False
METRIC_NAMES = (
    "deepmed_drift_score",
    "deepmed_drift_threshold",
    "deepmed_retraining_review_open",
    "deepmed_physician_agreement",
    "deepmed_celery_queue_length",
)


def queue_lengths() -> dict[str, int]:
    """Messages waiting per Celery queue (Redis lists named after the queues); empty in embedded mode."""
    from django.conf import settings

    from deepmed_web.celery import QUEUES

    if settings.EMBEDDED_MODE:
        return {}
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return {queue: int(client.llen(queue)) for queue in QUEUES}
    finally:
        client.close()


class MonitoringCollector:
    def describe(self):
        # Names only: without describe() the registry would call collect() (database
        # queries) when the app starts.
        yield from (GaugeMetricFamily(name, "") for name in METRIC_NAMES)

    def collect(self):
        try:
            yield from self._drift()
            yield from self._agreement()
        except Exception:
            logger.warning("monitoring metrics unavailable", exc_info=True)
        try:
            yield from self._queues()
        except Exception:
            logger.warning("queue depth unavailable", exc_info=True)

    def _drift(self):
        from apps.monitoring import selectors

        score = GaugeMetricFamily(
            "deepmed_drift_score",
            "Latest drift score per model version and signal (1.0 = significant).",
            labels=["model_version", "signal"],
        )
        threshold = GaugeMetricFamily(
            "deepmed_drift_threshold",
            "Drift score above which a model is marked for retraining review.",
            labels=["model_version"],
        )
        review = GaugeMetricFamily(
            "deepmed_retraining_review_open",
            "1 when the version is marked for retraining review.",
            labels=["model_version"],
        )
        open_versions = {r.model_version_id for r in selectors.open_retraining_reviews()}
        for latest in selectors.latest_drift_scores():
            version = latest.model_version.version
            if latest.score is not None:
                score.add_metric([version, "overall"], latest.score)
            for signal, value in latest.components.items():
                score.add_metric([version, signal], value)
            threshold.add_metric([version], latest.threshold)
            review.add_metric([version], 1.0 if latest.model_version_id in open_versions else 0.0)
        yield from (score, threshold, review)

    def _agreement(self):
        from django.conf import settings
        from django.utils import timezone

        from apps.modelops.selectors import get_champion, physician_agreement

        gauge = GaugeMetricFamily(
            "deepmed_physician_agreement",
            "Share of the champion's reviewed predictions the physician confirmed (agreement window).",
            labels=["model_version"],
        )
        champion = get_champion()
        if champion is not None:
            since = timezone.now() - timezone.timedelta(days=settings.DEEPMED_RETRAIN_AGREEMENT_WINDOW_DAYS)
            rate = physician_agreement(champion, since=since)["rate"]
            if rate is not None:
                gauge.add_metric([champion.version], rate)
        yield gauge

    def _queues(self):
        gauge = GaugeMetricFamily(
            "deepmed_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        for queue, length in queue_lengths().items():
            gauge.add_metric([queue], length)
        yield gauge


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(MonitoringCollector())
        _registered = True
