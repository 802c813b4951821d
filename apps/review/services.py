"""Writes for physician review: claiming a study, saving a review (and its versions), and the
training samples reviews produce (LabeledSample: this app writes them; modelops reads them and
records their use through `mark_samples_used`).

Claims and reviews serialise on the study's row lock (`select_for_update`), so two
physicians can never hold the same study or save two reviews of the same version.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record_event
from apps.core.errors import ApplicationError
from apps.review import selectors
from apps.review.models import Decision, LabeledSample, Review, ReviewClaim, SampleSource
from apps.studies import events
from apps.studies.models import Study, StudyStatus
from apps.studies.services import transition_study
from apps.studies.signals import DerivedData


class ReviewError(ApplicationError):
    """A refused review action, with a stable code (also the API error code) and HTTP status."""

    code = "review_refused"

    def __init__(self, code: str, message: str, http_status: int = 400):
        super().__init__(message, code=code, http_status=http_status)


def _ensure_reviewer(user: User) -> None:
    if not getattr(user, "is_clinical_staff", False):
        raise ReviewError("permission_denied", "Only physicians and administrators review studies.", 403)


def _locked_study(study_id) -> Study:
    study = Study.objects.select_for_update().filter(pk=study_id).first()
    if study is None:
        raise ReviewError("not_found", "No such study.", 404)
    return study


def _ensure_free_for(study: Study, physician: User) -> None:
    claim = ReviewClaim.objects.filter(study=study, expires_at__gt=timezone.now()).first()
    if claim is not None and claim.physician_id != physician.pk:
        raise ReviewError("study_claimed", "Another physician is reviewing this study.", 409)


def claim_study(study_id, *, physician: User, ip_address: str | None = None) -> ReviewClaim:
    """Lock a study awaiting review for `physician` for DEEPMED_REVIEW_CLAIM_MINUTES.
    Claiming again renews one's own claim; another physician's live claim refuses (409)."""
    _ensure_reviewer(physician)
    with transaction.atomic():
        study = _locked_study(study_id)
        if study.status not in selectors.AWAITING_REVIEW:
            raise ReviewError(
                "not_awaiting_review", f"The study is {study.get_status_display().lower()}, not awaiting review.", 409
            )
        _ensure_free_for(study, physician)
        expires = timezone.now() + timezone.timedelta(minutes=settings.DEEPMED_REVIEW_CLAIM_MINUTES)
        claim, _ = ReviewClaim.objects.update_or_create(
            study=study, defaults={"physician": physician, "expires_at": expires, "claimed_at": timezone.now()}
        )
        record_event(
            actor=physician,
            action="review.claim",
            obj=study,
            ip_address=ip_address,
            detail={"expires_at": expires.isoformat()},
        )
        transaction.on_commit(lambda: events.publish_study_status(study))  # worklists show the lock
    return claim


def release_study(study_id, *, physician: User, ip_address: str | None = None) -> bool:
    """Free one's own claim (an administrator may free anyone's). False when there was none."""
    _ensure_reviewer(physician)
    with transaction.atomic():
        study = _locked_study(study_id)
        claim = ReviewClaim.objects.filter(study=study).first()
        if claim is None or claim.expires_at <= timezone.now():
            ReviewClaim.objects.filter(study=study).delete()
            return False
        if claim.physician_id != physician.pk and physician.role != "admin":
            raise ReviewError("study_claimed", "Another physician holds this claim.", 409)
        claim.delete()
        record_event(actor=physician, action="review.release", obj=study, ip_address=ip_address)
        transaction.on_commit(lambda: events.publish_study_status(study))
    return True


def _final_label(decision: str, final_label: str, model_label: str, classes: list[str]) -> str:
    final_label = (final_label or "").strip()
    if decision == Decision.CONFIRM:
        if final_label and final_label != model_label:
            raise ReviewError("invalid_final_label", "Confirming keeps the model's label; use `correct` to change it.")
        return model_label
    if decision == Decision.CORRECT:
        if final_label not in classes:
            raise ReviewError("invalid_final_label", f"Choose one of: {', '.join(classes)}.")
        if final_label == model_label:
            raise ReviewError("invalid_final_label", "That is the model's label: confirm it instead.")
        return final_label
    if decision == Decision.NOT_ASSESSABLE:
        return ""
    raise ReviewError("invalid_decision", f"decision must be one of: {', '.join(Decision.values)}.")


def save_review(
    study_id,
    *,
    physician: User,
    decision: str,
    final_label: str = "",
    note: str = "",
    internal_note: str = "",
    fit_for_training: bool = True,
    ip_address: str | None = None,
) -> Review:
    """Record a physician's decision on a study.

    First review: the study moves to `reviewed` (which notifies the patient live). Review of
    a reviewed study: only the author of the review in force may correct it; the correction is
    a new version superseding the old one (kept), and the old version's training sample is
    withdrawn. When the image is fit for training and has a class label, a `LabeledSample`
    joins the retraining queue with its provenance. `note` is for the patient, `internal_note`
    for clinicians only. Frees the claim; audited.
    """
    _ensure_reviewer(physician)
    with transaction.atomic():
        study = _locked_study(study_id)
        prediction = selectors.champion_prediction(study)
        if prediction is None or study.status not in (*selectors.AWAITING_REVIEW, StudyStatus.REVIEWED):
            raise ReviewError("not_reviewable", "The study has no model result to review.", 409)
        _ensure_free_for(study, physician)
        previous = selectors.get_current_review(study)
        if previous is not None and previous.physician_id != physician.pk:
            raise ReviewError(
                "review_owned_by_other",
                "Another physician reviewed this study; only they can correct their review.",
                403,
            )
        label = _final_label(decision, final_label, prediction.label, selectors.reviewable_classes(study))
        review = Review.objects.create(
            study=study,
            physician=physician,
            decision=decision,
            final_label=label,
            note=(note or "").strip(),
            internal_note=(internal_note or "").strip(),
            fit_for_training=bool(fit_for_training),
            version=previous.version + 1 if previous else 1,
            supersedes=previous,
        )
        if previous is not None:
            LabeledSample.objects.filter(review=previous, excluded=False).update(excluded=True)
        sample = _add_training_sample(review, prediction) if review.fit_for_training and label else None
        ReviewClaim.objects.filter(study=study).delete()
        record_event(
            actor=physician,
            action="review.correct" if previous else "review.create",
            obj=review,
            ip_address=ip_address,
            detail={
                "study_id": str(study.pk),
                "decision": decision,
                "final_label": label,
                "model_label": prediction.label,
                "version": review.version,
                "supersedes": previous.pk if previous else None,
                "labeled_sample": sample.pk if sample else None,
            },
        )
        if study.status == StudyStatus.REVIEWED:
            transaction.on_commit(lambda: events.publish_study_status(study))  # the patient sees the correction
        else:
            transition_study(study, StudyStatus.REVIEWED)
    return review


def save_review_and_claim_next(study_id, *, physician: User, ip_address: str | None = None, **decision):
    """ "Save & next": save the physician's review of `study_id` (see `save_review`), then claim
    the next study in worklist order that nobody else holds (wrapping round to the top).
    Returns (review, claim of the next study or None when the worklist has nothing left).
    A study claimed by someone else in between is skipped."""
    candidates = selectors.studies_after(study_id, physician)
    review = save_review(study_id, physician=physician, ip_address=ip_address, **decision)
    for candidate in candidates:
        try:
            return review, claim_study(candidate, physician=physician, ip_address=ip_address)
        except ReviewError:
            continue  # taken or reviewed meanwhile: the one after it
    return review, None


def exclude_study_samples(study: Study) -> int:
    """Withdraw every training sample of `study` (identifying text seen in its image); how many."""
    return LabeledSample.objects.filter(study=study, excluded=False).update(excluded=True)


def withdraw_samples_of_deleted_study(study: Study, *, keep_for_research: bool) -> DerivedData:
    """The study is being deleted: its samples leave the retraining queue (`excluded=True`, image
    removed) unless a physician labelled it and the owner consents to research use; then the
    sample and its one file are kept (the study's deletion detaches them)."""
    samples = list(LabeledSample.objects.filter(study=study, excluded=False))
    kept = [s for s in samples if keep_for_research and s.source == SampleSource.PHYSICIAN_REVIEW]
    withdrawn = [s for s in samples if s not in kept]
    removed = {s.image.name for s in withdrawn if s.image}
    LabeledSample.objects.filter(pk__in=[s.pk for s in withdrawn]).update(excluded=True, image="")
    return DerivedData(
        audit={"samples_kept_for_research": len(kept), "samples_excluded": len(withdrawn)},
        remove_files=removed,
        keep_files={s.image.name for s in kept if s.image},
    )


def mark_samples_used(samples, run) -> None:
    """These samples were trained on by `run` (a modelops TrainingRun): they leave the queue
    of new labels once the run succeeds."""
    run.samples.add(*samples)  # LabeledSample.used_in_runs, this app's table


def _add_training_sample(review: Review, prediction) -> LabeledSample:
    """The study's stored (de-identified) image with the physician's label, and where it came from.
    An image that may show identifying text keeps the label on record but never trains."""
    study = review.study
    return LabeledSample.objects.create(
        excluded=study.has_identifying_text,
        image=study.image.name,
        sha256=study.sha256,
        label=review.final_label,
        source=SampleSource.PHYSICIAN_REVIEW,
        study=study,
        review=review,
        predicted_by=prediction.model_version,
        model_agreed=review.final_label == prediction.label,
    )
