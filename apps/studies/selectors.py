"""Reads for studies, always through the permission check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.models import User
from apps.studies.models import Prediction, PredictionRole, Study, StudyStatus


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


# What a study can hold by its status, so that reads of the others need no query (every read of
# a study the inference path has just moved on, its events included). apps.explanations stores an
# explanation and moves its study from `explaining` to `explained` in one transaction (or keeps a
# study a physician reviewed meanwhile `reviewed`); apps.review saves a study's first review and
# moves it to `reviewed` in one transaction; and nothing leaves `reviewed`.
MAY_HAVE_EXPLANATION = frozenset({StudyStatus.EXPLAINED, StudyStatus.REVIEWED})
MAY_HAVE_REVIEW = frozenset({StudyStatus.REVIEWED})


def study_explanation(study: Study):
    """The study's explanation (apps.explanations.models.Explanation), None before there is one."""
    try:
        return study.explanation  # the reverse one-to-one of the explanations app's model
    except ObjectDoesNotExist:
        return None


def latest_review(study: Study):
    """The physician's current decision (corrections add versions; the newest counts)."""
    return study.reviews.order_by("-version", "-created_at").first()  # apps.review.models.Review


# --- the status in the patient's words -----------------------------------------------------
# One wording for the study page, "My studies", live updates and the API's `status_text`: a
# result is never "done" while the physician's review is pending.

PATIENT_STATUS = {
    StudyStatus.UPLOADED: "Waiting to be analysed",
    StudyStatus.QUEUED: "Waiting to be analysed",
    StudyStatus.PREDICTING: "Being analysed",
    StudyStatus.PREDICTED: "Awaiting physician review",
    StudyStatus.EXPLAINING: "Awaiting physician review",
    StudyStatus.EXPLAINED: "Awaiting physician review",
    StudyStatus.REVIEWED: "Reviewed",
}
# Stored failure reasons are written for staff (an exception's text, "no model is deployed").
PATIENT_FAILURE_REASONS = {
    "not_a_chest_xray": "this does not look like a chest X-ray",
    "image_unreadable": "the image could not be read",
    "no_model": "the automated analysis is not available at the moment",
}
OTHER_FAILURE_REASON = "something went wrong on our side"

# The patient's progress steps, and for each status: which step it is at and that step's state
# (the steps before it are done, those after it to do). Studies fail only while being analysed.
PROGRESS_STEPS = (
    ("queued", "Queued"),
    ("analysing", "Analysing"),
    ("explaining", "Explaining"),
    ("review", "Physician review"),
)
STEP_OF_STATUS = {
    StudyStatus.UPLOADED: ("queued", "current"),
    StudyStatus.QUEUED: ("queued", "current"),
    StudyStatus.PREDICTING: ("analysing", "current"),
    StudyStatus.PREDICTED: ("explaining", "current"),
    StudyStatus.EXPLAINING: ("explaining", "current"),
    StudyStatus.EXPLAINED: ("review", "current"),
    StudyStatus.REVIEWED: ("review", "done"),
    StudyStatus.FAILED: ("analysing", "failed"),
}
# The physician's label in plain words (other classes: their name without underscores).
PLAIN_LABELS = {"PNEUMONIA": "pneumonia", "NORMAL": "normal chest X-ray", "COVID-19": "COVID-19"}
NOT_ASSESSABLE_WORDS = "the image could not be assessed"


def patient_failure_reason(failure_code: str) -> str:
    return PATIENT_FAILURE_REASONS.get(failure_code, OTHER_FAILURE_REASON)


def patient_status(study: Study) -> str:
    if study.status == StudyStatus.FAILED:
        return f"Could not be analysed: {patient_failure_reason(study.failure_code)}"
    return PATIENT_STATUS.get(study.status, study.get_status_display())


def progress_steps(status: str) -> list[dict]:
    """The patient's steps with their state (done, current, failed or todo) for `status`."""
    at_key, at_state = STEP_OF_STATUS[status]
    at = [key for key, _ in PROGRESS_STEPS].index(at_key)
    return [
        {"key": key, "label": label, "state": "done" if i < at else at_state if i == at else "todo"}
        for i, (key, label) in enumerate(PROGRESS_STEPS)
    ]


def plain_label(label: str) -> str:
    return PLAIN_LABELS.get(label, label.replace("_", " "))


def review_words(review) -> str:
    """A physician's answer in plain words: the label, or that the image could not be assessed."""
    return plain_label(review.final_label) if review.final_label else NOT_ASSESSABLE_WORDS


@dataclass(frozen=True)
class StudyResult:
    """Everything a patient sees about one study; the web page and the API render this."""

    study: Study
    prediction: Prediction | None
    explanation: object | None  # apps.explanations.models.Explanation
    review: object | None  # apps.review.models.Review
    low_confidence: bool
    error: dict | None  # {"code", "message"} when the study failed

    @property
    def probabilities_sorted(self) -> list[tuple[str, float]]:
        if self.prediction is None:
            return []
        return sorted(self.prediction.probabilities.items(), key=lambda item: -item[1])

    @property
    def status_text(self) -> str:
        return patient_status(self.study)

    @property
    def failure_reason(self) -> str:
        return patient_failure_reason(self.study.failure_code) if self.error else ""

    @property
    def review_words(self) -> str:
        return review_words(self.review) if self.review else ""


def new_study_result(study: Study) -> StudyResult:
    """`study_result` of a study this request has just created: nothing refers to it yet (its
    prediction, explanation and review come later, over the WebSocket or the next read), so no
    query is needed: four fewer per upload."""
    return StudyResult(study=study, prediction=None, explanation=None, review=None, low_confidence=False, error=None)


def study_result(study: Study) -> StudyResult:
    prediction = visible_prediction(study)
    failed = study.status == StudyStatus.FAILED
    return StudyResult(
        study=study,
        prediction=prediction,
        # Asked only of the statuses that can have them (every client reads its study once predicted).
        explanation=study_explanation(study) if study.status in MAY_HAVE_EXPLANATION else None,
        review=latest_review(study) if study.status in MAY_HAVE_REVIEW else None,
        low_confidence=bool(prediction and prediction.confidence < settings.DEEPMED_LOW_CONFIDENCE),
        error={"code": study.failure_code, "message": study.failure_reason} if failed else None,
    )


@dataclass(frozen=True)
class HistoryRow:
    """One line of the patient's "My studies": the status and the result in plain words."""

    study: Study
    status_text: str
    result_text: str  # empty while there is no result (and for a failed study)

    @property
    def failed(self) -> bool:
        return self.study.status == StudyStatus.FAILED


def patient_history(user: User) -> list[HistoryRow]:
    """The patient's studies, newest first: the physician's answer once reviewed, else the preview."""
    rows = []
    for study in studies_for_owner(user).prefetch_related("reviews"):
        review = max(study.reviews.all(), key=lambda r: r.version, default=None)
        preview = next((p for p in study.predictions.all() if p.role == PredictionRole.CHAMPION), None)
        if study.status == StudyStatus.FAILED:
            result = ""
        elif review is not None:
            result = f"Physician: {review_words(review)}"
        elif preview is not None:
            result = f"Automated preview: {plain_label(preview.label)}"
        else:
            result = ""
        rows.append(HistoryRow(study=study, status_text=patient_status(study), result_text=result))
    return rows


def get_own_study(user: User, study_id) -> Study:
    """The study if `user` owns it (deletion is the owner's right alone); 404 otherwise."""
    study = Study.objects.filter(pk=study_id, owner_id=getattr(user, "pk", None)).first()
    if study is None:
        raise Http404("No such study.")
    return study
