import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.review import selectors
from apps.review.models import LabeledSample, Review, ReviewClaim
from apps.review.services import ReviewError, claim_study, release_study, save_review
from apps.studies.models import StudyStatus

pytestmark = pytest.mark.django_db


# --- claims --------------------------------------------------------------------------------


def test_a_claim_locks_the_study_for_the_configured_time(pneumonia_study, physician, settings):
    settings.DEEPMED_REVIEW_CLAIM_MINUTES = 7
    before = timezone.now()
    claim = claim_study(pneumonia_study.pk, physician=physician)
    assert claim.physician == physician
    minutes = (claim.expires_at - before).total_seconds() / 60
    assert 6.9 < minutes < 7.1
    assert AuditEvent.objects.filter(action="review.claim", object_id=str(pneumonia_study.pk)).exists()


def test_second_physician_cannot_claim_until_released(pneumonia_study, physician, second_physician):
    claim_study(pneumonia_study.pk, physician=physician)
    with pytest.raises(ReviewError) as refused:
        claim_study(pneumonia_study.pk, physician=second_physician)
    assert refused.value.code == "study_claimed" and refused.value.http_status == 409
    with pytest.raises(ReviewError):
        release_study(pneumonia_study.pk, physician=second_physician)  # not theirs to release
    assert release_study(pneumonia_study.pk, physician=physician) is True
    assert claim_study(pneumonia_study.pk, physician=second_physician).physician == second_physician


def test_claiming_again_renews_and_a_lapsed_claim_can_be_taken(pneumonia_study, physician, second_physician):
    first = claim_study(pneumonia_study.pk, physician=physician)
    renewed = claim_study(pneumonia_study.pk, physician=physician)
    assert renewed.expires_at >= first.expires_at and ReviewClaim.objects.count() == 1
    ReviewClaim.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert claim_study(pneumonia_study.pk, physician=second_physician).physician == second_physician


def test_patients_cannot_claim_and_reviewed_studies_cannot_be_claimed(pneumonia_study, patient, physician):
    with pytest.raises(ReviewError) as refused:
        claim_study(pneumonia_study.pk, physician=patient)
    assert refused.value.http_status == 403
    save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    with pytest.raises(ReviewError) as refused:
        claim_study(pneumonia_study.pk, physician=physician)
    assert refused.value.code == "not_awaiting_review"


def test_saving_is_refused_while_another_physician_holds_the_claim(pneumonia_study, physician, second_physician):
    claim_study(pneumonia_study.pk, physician=physician)
    with pytest.raises(ReviewError) as refused:
        save_review(pneumonia_study.pk, physician=second_physician, decision="confirm")
    assert refused.value.code == "study_claimed"
    assert not Review.objects.exists()


# --- saving a review -------------------------------------------------------------------------


def test_confirm_reviews_the_study_and_queues_a_sample_with_provenance(pneumonia_study, physician, model_version):
    claim_study(pneumonia_study.pk, physician=physician)
    review = save_review(pneumonia_study.pk, physician=physician, decision="confirm", note="Agree.")
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.status == StudyStatus.REVIEWED
    assert (review.final_label, review.version, review.supersedes) == ("PNEUMONIA", 1, None)
    sample = LabeledSample.objects.get()
    assert (sample.study, sample.review, sample.predicted_by) == (pneumonia_study, review, model_version)
    assert (sample.label, sample.source, sample.model_agreed, sample.excluded) == (
        "PNEUMONIA",
        "physician_review",
        True,
        False,
    )
    assert sample.image.name == pneumonia_study.image.name and sample.sha256 == pneumonia_study.sha256
    assert not ReviewClaim.objects.exists()  # finishing frees the claim
    event = AuditEvent.objects.get(action="review.create")
    assert event.detail["final_label"] == "PNEUMONIA" and event.detail["labeled_sample"] == sample.pk


def test_correct_records_disagreement(pneumonia_study, physician):
    review = save_review(pneumonia_study.pk, physician=physician, decision="correct", final_label="NORMAL")
    assert review.final_label == "NORMAL"
    assert LabeledSample.objects.get().model_agreed is False


@pytest.mark.parametrize("decision,fit", [("not_assessable", True), ("confirm", False)])
def test_no_sample_without_a_class_label_or_when_unfit(pneumonia_study, physician, decision, fit):
    review = save_review(pneumonia_study.pk, physician=physician, decision=decision, fit_for_training=fit)
    assert review.final_label == ("" if decision == "not_assessable" else "PNEUMONIA")
    assert not LabeledSample.objects.exists()


@pytest.mark.parametrize(
    "decision,label,code",
    [
        ("correct", "PNEUMONIA", "invalid_final_label"),  # the model's own label
        ("correct", "CANCER", "invalid_final_label"),  # not a class of the model
        ("correct", "", "invalid_final_label"),
        ("confirm", "NORMAL", "invalid_final_label"),
        ("approve", "", "invalid_decision"),
    ],
)
def test_invalid_decisions_are_refused(pneumonia_study, physician, decision, label, code):
    with pytest.raises(ReviewError) as refused:
        save_review(pneumonia_study.pk, physician=physician, decision=decision, final_label=label)
    assert refused.value.code == code
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.status == StudyStatus.PREDICTED and not Review.objects.exists()


def test_a_study_without_a_result_cannot_be_reviewed(queued_study, physician):
    with pytest.raises(ReviewError) as refused:
        save_review(queued_study.pk, physician=physician, decision="not_assessable")
    assert refused.value.code == "not_reviewable"


def test_correction_is_a_new_version_and_the_old_one_is_kept(pneumonia_study, physician):
    first = save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    second = save_review(
        pneumonia_study.pk,
        physician=physician,
        decision="correct",
        final_label="COVID-19",
        note="Second look: bilateral ground glass.",
    )
    assert (second.version, second.supersedes) == (2, first)
    assert Review.objects.filter(pk=first.pk, final_label="PNEUMONIA").exists()
    assert selectors.get_current_review(pneumonia_study) == second
    samples = {s.review_id: s for s in LabeledSample.objects.all()}
    assert samples[first.pk].excluded is True  # the superseded label leaves the queue
    assert (samples[second.pk].label, samples[second.pk].excluded, samples[second.pk].model_agreed) == (
        "COVID-19",
        False,
        False,
    )
    assert AuditEvent.objects.filter(action="review.correct", detail__version=2).exists()


def test_another_physician_cannot_edit_a_saved_review(pneumonia_study, physician, second_physician):
    save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    with pytest.raises(ReviewError) as refused:
        save_review(pneumonia_study.pk, physician=second_physician, decision="correct", final_label="NORMAL")
    assert refused.value.code == "review_owned_by_other" and refused.value.http_status == 403
    assert Review.objects.count() == 1 and LabeledSample.objects.get().label == "PNEUMONIA"


def test_saving_notifies_the_patient_live(pneumonia_study, physician, listen, django_capture_on_commit_callbacks):
    from apps.studies.events import user_group

    receive = listen(user_group(pneumonia_study.owner_id))
    with django_capture_on_commit_callbacks(execute=True):
        save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    message = receive()
    assert message["status"] == "reviewed" and message["study_id"] == str(pneumonia_study.pk)
    assert message["review_version"] == 1
    with django_capture_on_commit_callbacks(execute=True):  # a correction is pushed too, as a new version
        save_review(pneumonia_study.pk, physician=physician, decision="not_assessable")
    correction = receive()
    assert (correction["study_id"], correction["status"], correction["review_version"]) == (
        str(pneumonia_study.pk),
        "reviewed",
        2,
    )


def test_a_study_with_review_versions_can_still_be_deleted(pneumonia_study, physician):
    from apps.studies.services import delete_study

    save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    save_review(pneumonia_study.pk, physician=physician, decision="correct", final_label="NORMAL")
    study_id = pneumonia_study.pk
    delete_study(pneumonia_study, actor=pneumonia_study.owner)
    assert not Review.objects.filter(study_id=study_id).exists()
    assert all(s.excluded for s in LabeledSample.objects.all())  # no research consent: withdrawn


def test_claims_and_releases_reach_the_worklist_group(
    pneumonia_study, physician, listen, django_capture_on_commit_callbacks
):
    from apps.studies.events import WORKLIST_GROUP

    receive = listen(WORKLIST_GROUP)
    for action in (claim_study, release_study):
        with django_capture_on_commit_callbacks(execute=True):
            action(pneumonia_study.pk, physician=physician)
        assert receive()["study_id"] == str(pneumonia_study.pk)
