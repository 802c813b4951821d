"""Reads for studies, always through the permission check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.models import User
from apps.studies.models import Explanation, Prediction, PredictionRole, Study, StudyStatus


def can_view_study(user: User, study: Study) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return study.owner_id == user.pk or user.is_clinical_staff


def get_study_for_user(user: User, study_id) -> Study:
    """The study if `user` may see it. A patient asking for someone else's study gets 404,
    so ids cannot be probed; clinical staff see every study."""
    study = Study.objects.select_related("owner").filter(pk=study_id).first()
    if study is None:
        raise Http404("No such study.")
    if not can_view_study(user, study):
        if user.is_authenticated and not getattr(user, "is_patient", True):
            raise PermissionDenied
        raise Http404("No such study.")
    return study


def studies_for_owner(
    user: User, *, status: str | None = None, created_after: date | None = None, created_before: date | None = None
) -> QuerySet[Study]:
    """The user's own studies, newest first; dates are whole days (after: from that day on,
    before: up to the day before)."""
    studies = Study.objects.filter(owner=user)
    if status:
        studies = studies.filter(status=status)
    if created_after:
        studies = studies.filter(created_at__date__gte=created_after)
    if created_before:
        studies = studies.filter(created_at__date__lt=created_before)
    return studies.prefetch_related("predictions").order_by("-created_at")


def champion_prediction(study: Study) -> Prediction | None:
    return study.predictions.filter(role=PredictionRole.CHAMPION).first()


def visible_prediction(study: Study) -> Prediction | None:
    """The champion's result as shown to people: never for a failed study (an image the
    out-of-distribution gate refused gets no disease label, whatever was stored)."""
    if study.status == StudyStatus.FAILED:
        return None
    return champion_prediction(study)


def study_explanation(study: Study) -> Explanation | None:
    return Explanation.objects.filter(study=study).first()


def latest_review(study: Study):
    """The physician's current decision (corrections add versions; the newest counts)."""
    from apps.review.models import Review

    return Review.objects.filter(study=study).order_by("-version", "-created_at").first()


@dataclass(frozen=True)
class StudyResult:
    """Everything a patient sees about one study; the web page and the API render this."""

    study: Study
    prediction: Prediction | None
    explanation: Explanation | None
    review: object | None  # apps.review.models.Review
    low_confidence: bool
    error: dict | None  # {"code", "message"} when the study failed

    @property
    def probabilities_sorted(self) -> list[tuple[str, float]]:
        if self.prediction is None:
            return []
        return sorted(self.prediction.probabilities.items(), key=lambda item: -item[1])


def study_result(study: Study) -> StudyResult:
    prediction = visible_prediction(study)
    failed = study.status == StudyStatus.FAILED
    return StudyResult(
        study=study,
        prediction=prediction,
        explanation=None if failed else study_explanation(study),
        review=None if failed else latest_review(study),
        low_confidence=bool(prediction and prediction.confidence < settings.DEEPMED_LOW_CONFIDENCE),
        error={"code": study.failure_code, "message": study.failure_reason} if failed else None,
    )


def get_own_study(user: User, study_id) -> Study:
    """The study if `user` owns it (deletion is the owner's right alone); 404 otherwise."""
    study = Study.objects.filter(pk=study_id, owner_id=getattr(user, "pk", None)).first()
    if study is None:
        raise Http404("No such study.")
    return study
