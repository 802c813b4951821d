import pytest
from django.utils import timezone

from apps.review import selectors
from apps.review.models import Review
from apps.review.services import save_review
from apps.studies.models import StudyStatus
from apps.studies.services import fail_study
from tests.factories import StudyFactory, hours_ago

pytestmark = pytest.mark.django_db

SURE_NORMAL = {"COVID-19": 0.01, "NORMAL": 0.98, "PNEUMONIA": 0.01}
UNSURE_NORMAL = {"COVID-19": 0.20, "NORMAL": 0.45, "PNEUMONIA": 0.35}
SURE_COVID = {"COVID-19": 0.95, "NORMAL": 0.03, "PNEUMONIA": 0.02}
UNSURE_PNEUMONIA = {"COVID-19": 0.30, "NORMAL": 0.20, "PNEUMONIA": 0.50}


def _ids(worklist):
    return [item.study.pk for item in worklist.items]


def test_worklist_order_is_severity_then_uncertainty_then_age(model_version):
    sure_normal_old = StudyFactory(predicted=True, probabilities=SURE_NORMAL, created_at=hours_ago(48))
    unsure_normal = StudyFactory(predicted=True, probabilities=UNSURE_NORMAL)
    sure_covid_new = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(1))
    sure_covid_old = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(5))
    unsure_pneumonia = StudyFactory(predicted=True, probabilities=UNSURE_PNEUMONIA)
    expected = [unsure_pneumonia.pk, sure_covid_old.pk, sure_covid_new.pk, unsure_normal.pk, sure_normal_old.pk]
    assert _ids(selectors.worklist()) == expected


def test_worklist_holds_only_studies_awaiting_review(model_version, physician, queued_study):
    waiting = StudyFactory(predicted=True, probabilities=SURE_COVID)
    reviewed = StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    save_review(reviewed.pk, physician=physician, decision="confirm")
    failed = StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    failed.status = StudyStatus.PREDICTING  # a study that fails after its prediction (not a normal path)
    failed.save(update_fields=["status"])
    fail_study(failed, code="x", reason="y")
    worklist = selectors.worklist()
    assert _ids(worklist) == [waiting.pk]
    assert worklist.counts["total"] == 1


def test_filters_by_label_confidence_band_and_date(model_version):
    covid = StudyFactory(predicted=True, probabilities=SURE_COVID)
    unsure = StudyFactory(predicted=True, probabilities=UNSURE_NORMAL)
    old_normal = StudyFactory(predicted=True, probabilities=SURE_NORMAL, created_at=hours_ago(24 * 10))
    F = selectors.WorklistFilters
    assert _ids(selectors.worklist(F(label="NORMAL"))) == [unsure.pk, old_normal.pk]
    assert _ids(selectors.worklist(F(confidence="low"))) == [unsure.pk]
    assert _ids(selectors.worklist(F(confidence="high"))) == [covid.pk, old_normal.pk]
    today = timezone.localdate()
    assert set(_ids(selectors.worklist(F(date_from=today)))) == {covid.pk, unsure.pk}
    assert _ids(selectors.worklist(F(date_to=today - timezone.timedelta(days=5)))) == [old_normal.pk]


def test_counts_cover_everything_awaiting_whatever_the_filter(model_version, physician):
    from apps.review.services import claim_study

    covid = StudyFactory(predicted=True, probabilities=SURE_COVID)
    StudyFactory(predicted=True, probabilities=UNSURE_NORMAL)
    StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    claim_study(covid.pk, physician=physician)
    counts = selectors.worklist(selectors.WorklistFilters(label="COVID-19")).counts
    assert counts["total"] == 3 and counts["shown"] == 1 and counts["claimed"] == 1
    assert counts["by_label"] == {"COVID-19": 1, "NORMAL": 2}
    assert counts["by_confidence"] == {"low": 1, "medium": 0, "high": 2}


def test_current_review_is_the_newest_version(pneumonia_study, physician):
    first = Review.objects.create(
        study=pneumonia_study, physician=physician, decision="confirm", final_label="PNEUMONIA"
    )
    assert selectors.get_current_review(pneumonia_study) == first
    second = Review.objects.create(
        study=pneumonia_study,
        physician=physician,
        decision="correct",
        final_label="NORMAL",
        version=2,
        supersedes=first,
    )
    assert selectors.get_current_review(pneumonia_study) == second
    assert selectors.review_history(pneumonia_study) == [second, first]


def test_lapsed_claim_is_no_claim(pneumonia_study, physician):
    from apps.review.models import ReviewClaim

    ReviewClaim.objects.create(
        study=pneumonia_study, physician=physician, expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert selectors.active_claim(pneumonia_study) is None
    assert selectors.worklist().items[0].claim is None
