"""Reads for physician review: the worklist, current reviews and claims, feedback figures."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from apps.modelops.models import ModelVersion
from apps.review import priority
from apps.review.models import LabeledSample, Review, ReviewClaim
from apps.studies.models import Prediction, PredictionRole, Study, StudyStatus

AWAITING_REVIEW = (StudyStatus.PREDICTED, StudyStatus.EXPLAINING, StudyStatus.EXPLAINED)


def get_current_review(study: Study) -> Review | None:
    """The study's review in force: the newest version (older versions are kept, superseded)."""
    return Review.objects.filter(study=study).select_related("physician").order_by("-version").first()


def review_history(study: Study) -> list[Review]:
    return list(Review.objects.filter(study=study).select_related("physician").order_by("-version"))


def active_claim(study: Study) -> ReviewClaim | None:
    """The claim on `study` if one is in force (a lapsed claim counts as none)."""
    return ReviewClaim.objects.filter(study=study, expires_at__gt=timezone.now()).select_related("physician").first()


@dataclass(frozen=True)
class WorklistFilters:
    label: str = ""  # the model's label
    confidence: str = ""  # one of priority.CONFIDENCE_BANDS
    date_from: date | None = None
    date_to: date | None = None  # inclusive


@dataclass(frozen=True)
class WorklistItem:
    study: Study
    prediction: Prediction
    severity: int
    uncertainty: float
    confidence_band: str
    claim: ReviewClaim | None

    @property
    def severe_probability(self) -> float:
        return priority.severe_probability(self.prediction.probabilities)

    @property
    def suspected_severe(self) -> bool:
        """The worklist's flag: a calibrated probability of a severe finding at or above
        DEEPMED_SEVERE_THRESHOLD (not merely a severe top label)."""
        return priority.is_suspected_severe(self.prediction.probabilities)

    @property
    def waiting(self):
        """How long the study has waited for review (a timedelta)."""
        return timezone.now() - self.study.created_at

    @property
    def probabilities_sorted(self) -> list[tuple[str, float]]:
        return sorted(self.prediction.probabilities.items(), key=lambda item: -item[1])


@dataclass
class Worklist:
    items: list[WorklistItem]
    counts: dict[str, Any] = field(default_factory=dict)
    page: int = 1
    pages: int = 1
    page_size: int = 0  # 0: every item on one page

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """The position (from 1, in the whole filtered worklist) of this page's first item."""
        return (self.page - 1) * self.page_size + 1 if self.page_size else 1


def _awaiting_predictions():
    return Prediction.objects.filter(role=PredictionRole.CHAMPION, study__status__in=AWAITING_REVIEW)


def _filtered(predictions, filters: WorklistFilters):
    if filters.label:
        predictions = predictions.filter(label=filters.label)
    if filters.confidence:
        low, high = priority.confidence_range(filters.confidence)
        predictions = predictions.filter(confidence__gte=low)
        if high != float("inf"):
            predictions = predictions.filter(confidence__lt=high)
    if filters.date_from:
        predictions = predictions.filter(study__created_at__date__gte=filters.date_from)
    if filters.date_to:
        predictions = predictions.filter(study__created_at__date__lte=filters.date_to)
    return predictions


def worklist(filters: WorklistFilters = WorklistFilters(), *, page: int | None = None, page_size: int = 0) -> Worklist:
    """Studies awaiting review, in priority order (see apps.review.priority), with counts:
    `total` (all awaiting, unfiltered), `shown` (all matching the filters, every page),
    `claimed` (of those, locked now), `severe` (of those, flagged as suspected severe), the
    unfiltered numbers by model label and by confidence band, and `filter_labels`: the
    champion model's classes (what the label filter offers) with their numbers.
    With `page` and `page_size`, only that page's items (pages from 1; out of range: the last)."""
    now = timezone.now()
    claims = {c.study_id: c for c in ReviewClaim.objects.filter(expires_at__gt=now).select_related("physician")}
    predictions = _filtered(_awaiting_predictions(), filters).select_related("study")
    items = [
        WorklistItem(
            study=p.study,
            prediction=p,
            severity=priority.severity(p.label),
            uncertainty=priority.uncertainty(p.probabilities),
            confidence_band=priority.confidence_band(p.confidence),
            claim=claims.get(p.study_id),
        )
        for p in predictions
    ]
    items.sort(key=lambda i: priority.priority_key(i.prediction.label, i.prediction.probabilities, i.study.created_at))
    everything = list(_awaiting_predictions().values_list("label", "confidence"))
    by_label = dict(sorted(Counter(label for label, _ in everything).items()))
    counts = {
        "total": len(everything),
        "shown": len(items),
        "claimed": sum(1 for i in items if i.claim is not None),
        "severe": sum(1 for i in items if i.suspected_severe),
        "by_label": by_label,
        "filter_labels": {label: by_label.get(label, 0) for label in model_classes() or list(by_label)},
        "by_confidence": {
            band: sum(1 for _, c in everything if priority.confidence_band(c) == band)
            for band in priority.CONFIDENCE_BANDS
        },
    }
    if page is None or page_size <= 0:
        return Worklist(items=items, counts=counts)
    pages = max(1, -(-len(items) // page_size))
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    return Worklist(items=items[start : start + page_size], counts=counts, page=page, pages=pages, page_size=page_size)


def model_classes() -> list[str]:
    """The deployed (champion) model's classes, in its order; empty when none is deployed."""
    from apps.modelops.selectors import get_champion

    champion = get_champion()
    return list(champion.classes) if champion is not None and champion.classes else []


def studies_after(study_id, physician) -> list:
    """The ids of the studies awaiting review that `physician` may take, in worklist order,
    starting after `study_id` and wrapping round to the top (the study itself and studies
    another physician holds left out). "Save & next" claims the first of them it can."""
    items = worklist().items
    ids = [i.study.pk for i in items]
    free = {i.study.pk for i in items if i.claim is None or i.claim.physician_id == physician.pk}
    position = next((k for k, pk in enumerate(ids) if str(pk) == str(study_id)), -1)
    ordered = ids[position + 1 :] + ids[: max(position, 0)]
    return [pk for pk in ordered if pk in free and str(pk) != str(study_id)]


def reviewable_classes(study: Study) -> list[str]:
    """The classes a physician may choose: those of the model that predicted the study."""
    prediction = champion_prediction(study)
    if prediction is None:
        return []
    if prediction.model_version is not None and prediction.model_version.classes:
        return list(prediction.model_version.classes)
    return sorted(prediction.probabilities)


def champion_prediction(study: Study) -> Prediction | None:
    return Prediction.objects.filter(study=study, role=PredictionRole.CHAMPION).select_related("model_version").first()


def reviews_by(physician, *, limit: int = 20) -> list[Review]:
    """The physician's latest saved reviews (their own, the ones they may correct)."""
    current = Review.objects.filter(study=OuterRef("study")).order_by("-version").values("pk")[:1]
    return list(
        Review.objects.filter(physician=physician)
        .annotate(current_pk=Subquery(current))
        .select_related("study")
        .order_by("-created_at")[:limit]
    )


# --- feedback figures (dashboard and Prometheus) ----------------------------------------------


@dataclass
class ModelFeedback:
    model_version_id: int
    name: str
    alias: str
    reviews: int = 0  # predictions of this version with a physician's final class label
    agreed: int = 0
    not_assessable: int = 0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # model label -> physician label -> n
    samples_waiting: int = 0  # confirmed samples not yet used by a successful training run

    @property
    def agreement_rate(self) -> float | None:
        return self.agreed / self.reviews if self.reviews else None

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.confusion) | {final for row in self.confusion.values() for final in row})

    @property
    def matrix(self) -> list[tuple[str, list[int]]]:
        """Rows of the confusion table in `labels` order: (model label, count per physician label)."""
        return [(m, [self.confusion.get(m, {}).get(p, 0) for p in self.labels]) for m in self.labels]


def model_feedback() -> list[ModelFeedback]:
    """Per model version: agreement with the physicians' current reviews (live accuracy),
    the model-vs-physician confusion, and confirmed samples waiting for retraining.
    Every prediction counts, champion or shadow challenger: both are judged by the same review."""
    current = Review.objects.filter(study=OuterRef("study")).order_by("-version")
    rows = (
        Prediction.objects.exclude(model_version=None)
        .annotate(decision=Subquery(current.values("decision")[:1]), final=Subquery(current.values("final_label")[:1]))
        .exclude(decision=None)
        .values_list("model_version_id", "label", "final")
    )
    waiting = Counter(new_samples().exclude(predicted_by=None).values_list("predicted_by_id", flat=True))
    feedback: dict[int, ModelFeedback] = {}
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in={r[0] for r in rows} | set(waiting))}
    for pk, version in versions.items():
        feedback[pk] = ModelFeedback(
            model_version_id=pk, name=str(version), alias=version.alias, samples_waiting=waiting.get(pk, 0)
        )
    confusion: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for pk, label, final in rows:
        entry = feedback[pk]
        if not final:
            entry.not_assessable += 1
            continue
        entry.reviews += 1
        entry.agreed += label == final
        confusion[pk][label][final] += 1
    for pk, table in confusion.items():
        feedback[pk].confusion = {label: dict(finals) for label, finals in sorted(table.items())}
    return sorted(feedback.values(), key=lambda f: -f.model_version_id)


def training_samples():
    """Physician-confirmed samples a new training run includes: never withdrawn ones, and never
    images flagged as showing identifying text (a second safeguard next to the exclusion)."""
    return LabeledSample.objects.filter(excluded=False).exclude(study__identifying_text__gt="").order_by("pk")


def new_samples():
    """Samples no successful training has used yet: the retraining queue."""
    return training_samples().exclude(used_in_runs__status="succeeded")


def parse_date(value: str | None) -> date | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%d").date()


@dataclass(frozen=True)
class AgreementPoint:
    day: date  # the first day of the period
    reviews: int
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.reviews if self.reviews else 0.0


def agreement_over_time(*, days: int = 84, period_days: int = 7, now: datetime | None = None) -> list[AgreementPoint]:
    """Agreement of the deployed model's results (champion role) with the physicians' current
    reviews, per period of `period_days` over the last `days`, oldest first (periods without a
    review are left out). A review counts in the period it was saved in."""
    now = now or timezone.now()
    start = (now - timezone.timedelta(days=days)).date()
    current = Review.objects.filter(study=OuterRef("study")).order_by("-version")
    rows = (
        Prediction.objects.filter(role=PredictionRole.CHAMPION)
        .annotate(
            final=Subquery(current.values("final_label")[:1]),
            reviewed_at=Subquery(current.values("created_at")[:1]),
        )
        .exclude(final=None)
        .exclude(final="")
        .values_list("label", "final", "reviewed_at")
    )
    periods: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for label, final, reviewed_at in rows:
        day = timezone.localtime(reviewed_at).date() if timezone.is_aware(reviewed_at) else reviewed_at.date()
        if day < start:
            continue
        first = start + timezone.timedelta(days=((day - start).days // period_days) * period_days)
        periods[first][0] += 1
        periods[first][1] += label == final
    return [AgreementPoint(day=d, reviews=n, agreed=a) for d, (n, a) in sorted(periods.items())]
