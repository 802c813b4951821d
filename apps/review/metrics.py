"""Prometheus gauges of the physician feedback loop, read from the database at scrape time
(so every web replica reports the same figures): live accuracy per model version, the
model-vs-physician confusion, samples waiting for retraining, and the worklist size."""

from __future__ import annotations

import logging

from prometheus_client.core import REGISTRY, GaugeMetricFamily

logger = logging.getLogger(__name__)
_registered = False
METRIC_NAMES = (
    "deepmed_review_agreement_rate",
    "deepmed_review_reviews",
    "deepmed_review_confusion",
    "deepmed_review_samples_waiting",
    "deepmed_review_worklist_size",
)


class ReviewFeedbackCollector:
    def describe(self):
        # Names only, so registering does not query the database.
        yield from (GaugeMetricFamily(name, "") for name in METRIC_NAMES)

    def collect(self):
        try:
            yield from self._families()
        except Exception:
            logger.warning("review metrics unavailable", exc_info=True)

    def _families(self):
        from apps.review.selectors import AWAITING_REVIEW, model_feedback
        from apps.studies.models import Study

        labels = ["model_version", "alias"]
        rate = GaugeMetricFamily(
            "deepmed_review_agreement_rate",
            "Share of a model version's reviewed predictions the physician confirmed (live accuracy).",
            labels=labels,
        )
        reviews = GaugeMetricFamily(
            "deepmed_review_reviews", "Predictions of a model version with a physician's class label.", labels=labels
        )
        confusion = GaugeMetricFamily(
            "deepmed_review_confusion",
            "Reviewed predictions by model label and physician label.",
            labels=[*labels, "model_label", "physician_label"],
        )
        waiting = GaugeMetricFamily(
            "deepmed_review_samples_waiting",
            "Physician-labelled samples not yet used by a successful training run.",
            labels=labels,
        )
        for entry in model_feedback():
            key = [entry.name, entry.alias or "none"]
            if entry.agreement_rate is not None:
                rate.add_metric(key, entry.agreement_rate)
            reviews.add_metric(key, entry.reviews)
            waiting.add_metric(key, entry.samples_waiting)
            for model_label, row in entry.confusion.items():
                for physician_label, n in row.items():
                    confusion.add_metric([*key, model_label, physician_label], n)
        worklist = GaugeMetricFamily("deepmed_review_worklist_size", "Studies awaiting a physician's review.")
        worklist.add_metric([], Study.objects.filter(status__in=AWAITING_REVIEW).count())
        yield from (rate, reviews, confusion, waiting, worklist)


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(ReviewFeedbackCollector())
        _registered = True
