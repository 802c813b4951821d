"""Issue 16, physicians: the severity flag marks a minority, "Save & next" claims the next study
in worklist order, the worklist pages and offers only the model's classes, the dashboard's
agreement over time and shaded confusion grid."""

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.review import charts, priority, selectors, services
from apps.review.models import Review, ReviewClaim
from apps.studies.models import StudyStatus
from tests.factories import StudyFactory, hours_ago

pytestmark = pytest.mark.django_db

SURE_COVID = {"COVID-19": 0.90, "NORMAL": 0.05, "PNEUMONIA": 0.05}
LEANING_PNEUMONIA = {"COVID-19": 0.10, "NORMAL": 0.48, "PNEUMONIA": 0.42}  # severe 0.52: not flagged
WEAK_PNEUMONIA = {"COVID-19": 0.05, "NORMAL": 0.40, "PNEUMONIA": 0.55}  # top label severe, 0.60 < 0.7
SURE_NORMAL = {"COVID-19": 0.01, "NORMAL": 0.98, "PNEUMONIA": 0.01}


def _ids(worklist):
    return [item.study.pk for item in worklist.items]


def test_severe_probability_sums_the_severe_classes():
    assert priority.severe_probability(SURE_COVID) == pytest.approx(0.95)
    assert priority.severe_probability(SURE_NORMAL) == pytest.approx(0.02)
    assert priority.severe_probability({"LUNG_OPACITY": 0.9, "NORMAL": 0.1}) == 0.0


def test_severity_flag_needs_the_threshold_not_a_severe_label(settings):
    settings.DEEPMED_SEVERE_THRESHOLD = 0.7
    assert priority.is_suspected_severe(SURE_COVID)
    assert not priority.is_suspected_severe(WEAK_PNEUMONIA)  # labelled PNEUMONIA, yet only 0.60
    settings.DEEPMED_SEVERE_THRESHOLD = 0.5
    assert priority.is_suspected_severe(WEAK_PNEUMONIA)


def test_worklist_flags_only_the_minority_above_the_threshold(settings):
    settings.DEEPMED_SEVERE_THRESHOLD = 0.7
    covid = StudyFactory(predicted=True, probabilities=SURE_COVID)
    for probabilities in (WEAK_PNEUMONIA, WEAK_PNEUMONIA, LEANING_PNEUMONIA, SURE_NORMAL):
        StudyFactory(predicted=True, probabilities=probabilities)
    worklist = selectors.worklist()
    flagged = [i.study.pk for i in worklist.items if i.suspected_severe]
    assert flagged == [covid.pk]
    assert worklist.counts["severe"] == 1
    non_normal = [i for i in worklist.items if i.prediction.label != "NORMAL"]
    assert len(non_normal) == 3  # three non-normal labels, one flag


def test_filter_labels_are_the_champion_models_classes(model_version):
    StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    counts = selectors.worklist().counts
    assert list(counts["filter_labels"]) == model_version.classes
    assert counts["filter_labels"] == {"COVID-19": 0, "NORMAL": 1, "PNEUMONIA": 0}


def test_worklist_pages():
    studies = [
        StudyFactory(predicted=True, probabilities=SURE_NORMAL, created_at=hours_ago(10 - k)) for k in range(5)
    ]  # oldest first in the order
    page1 = selectors.worklist(page=1, page_size=2)
    page3 = selectors.worklist(page=3, page_size=2)
    assert (page1.pages, page1.has_next, page1.has_previous) == (3, True, False)
    assert _ids(page1) == [studies[0].pk, studies[1].pk]
    assert _ids(page3) == [studies[4].pk] and page3.first_index == 5 and not page3.has_next
    assert selectors.worklist(page=99, page_size=2).page == 3
    assert page1.counts["shown"] == 5


def test_studies_after_follows_the_order_wraps_and_skips_others_claims(physician, second_physician):
    first = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(3))
    second = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(2))
    third = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(1))
    fourth = StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    assert _ids(selectors.worklist()) == [first.pk, second.pk, third.pk, fourth.pk]
    assert selectors.studies_after(second.pk, physician) == [third.pk, fourth.pk, first.pk]
    services.claim_study(third.pk, physician=second_physician)
    assert selectors.studies_after(second.pk, physician) == [fourth.pk, first.pk]


def test_save_and_next_saves_then_claims_the_next_study(physician, second_physician):
    first = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(3))
    taken = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(2))
    nxt = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(1))
    services.claim_study(taken.pk, physician=second_physician)
    review, claim = services.save_review_and_claim_next(first.pk, physician=physician, decision="confirm")
    assert review.study_id == first.pk and review.final_label == "COVID-19"
    first.refresh_from_db()
    assert first.status == StudyStatus.REVIEWED
    assert claim is not None and claim.study_id == nxt.pk and claim.physician_id == physician.pk
    assert ReviewClaim.objects.get(study=taken).physician_id == second_physician.pk  # untouched


def test_save_and_next_on_the_last_study_claims_nothing(physician):
    only = StudyFactory(predicted=True, probabilities=SURE_COVID)
    review, claim = services.save_review_and_claim_next(only.pk, physician=physician, decision="not_assessable")
    assert review.final_label == "" and claim is None


def test_save_and_next_does_not_need_a_prior_claim_but_refuses_someone_elses(physician, second_physician):
    study = StudyFactory(predicted=True, probabilities=SURE_COVID)
    services.claim_study(study.pk, physician=second_physician)
    with pytest.raises(services.ReviewError):
        services.save_review_and_claim_next(study.pk, physician=physician, decision="confirm")
    assert not Review.objects.exists()


def test_save_and_next_view_opens_the_next_study(client, physician):
    first = StudyFactory(predicted=True, probabilities=SURE_COVID, created_at=hours_ago(2))
    nxt = StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    client.force_login(physician)
    page = client.get(reverse("review-study", kwargs={"study_id": first.pk}))
    assert page.status_code == 200 and b'id="save-next"' in page.content
    assert not ReviewClaim.objects.exists()  # looking does not claim
    done = client.post(reverse("review-study", kwargs={"study_id": first.pk}), {"decision": "confirm", "then": "next"})
    assert done.status_code == 302 and done.url == reverse("review-study", kwargs={"study_id": nxt.pk})
    assert ReviewClaim.objects.get(study=nxt).physician_id == physician.pk


def test_invalid_correction_is_shown_at_its_field(client, physician):
    study = StudyFactory(predicted=True, probabilities=SURE_COVID)
    client.force_login(physician)
    page = client.post(reverse("review-study", kwargs={"study_id": study.pk}), {"decision": "correct"})
    assert page.status_code == 400
    html = page.content.decode()
    assert 'aria-invalid="true" aria-describedby="final-label-error"' in html and 'id="final-label-error"' in html


def test_agreement_over_time_groups_reviews_by_week(physician):
    agree = StudyFactory(predicted=True, probabilities=SURE_COVID)
    disagree = StudyFactory(predicted=True, probabilities=SURE_NORMAL)
    services.save_review(agree.pk, physician=physician, decision="confirm")
    services.save_review(disagree.pk, physician=physician, decision="correct", final_label="PNEUMONIA")
    old = StudyFactory(predicted=True, probabilities=SURE_COVID)
    services.save_review(old.pk, physician=physician, decision="confirm")
    Review.objects.filter(study=old).update(created_at=timezone.now() - timezone.timedelta(days=30))
    points = selectors.agreement_over_time()
    assert [(p.reviews, p.agreed) for p in points] == [(1, 1), (2, 1)]
    chart = charts.agreement_chart(points)
    assert [d["percent"] for d in chart["dots"]] == [100, 50]
    assert chart["dots"][0]["y"] < chart["dots"][1]["y"]  # 100 % is drawn higher


def test_confusion_grid_shades_by_row_share_and_marks_the_diagonal():
    grid = charts.confusion_grid(["A", "B"], [("A", [3, 1]), ("B", [0, 2])])
    (a_label, a_cells), (_, b_cells) = grid
    assert a_label == "A" and [c.diagonal for c in a_cells] == [True, False]
    assert a_cells[0].shade > a_cells[1].shade > 0 and b_cells[0].shade == 0 and b_cells[1].shade == charts.SHADES


def test_dashboard_draws_the_chart_and_grid(client, physician):
    study = StudyFactory(predicted=True, probabilities=SURE_COVID)
    services.save_review(study.pk, physician=physician, decision="confirm")
    client.force_login(physician)
    html = client.get(reverse("review-dashboard")).content.decode()
    assert 'id="agreement-chart"' in html and "<polyline" in html
    assert "confusion-grid" in html and "diagonal" in html and "shade-5" in html


def test_flagged_studies_come_first(settings):
    settings.DEEPMED_SEVERE_THRESHOLD = 0.7
    unsure_pneumonia = StudyFactory(
        predicted=True, probabilities={"COVID-19": 0.10, "NORMAL": 0.42, "PNEUMONIA": 0.48}, created_at=hours_ago(5)
    )
    sure_covid = StudyFactory(predicted=True, probabilities=SURE_COVID)
    assert _ids(selectors.worklist()) == [sure_covid.pk, unsure_pneumonia.pk]
