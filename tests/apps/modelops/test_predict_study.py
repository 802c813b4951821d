"""The inference task's database work per study: claim, versions, result, in few round trips,
with the same status events as one transition at a time."""

from __future__ import annotations

import pytest

from apps.modelops import selectors, services
from apps.modelops.services import serving
from apps.studies import events
from apps.studies import services as study_services
from apps.studies.models import Prediction, PredictionRole, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """The status events, each built as publishing builds it (its queries are counted)."""
    sent = []

    def publish(study):
        payload = events.study_status_payload(study)
        sent.append((payload["status"], study.pk))

    monkeypatch.setattr(events, "publish_study_status", publish)
    from apps.explanations import services as explanation_services

    monkeypatch.setattr(explanation_services, "enqueue_explanation", lambda study_id: None)  # not under test
    return sent


def test_predict_study_claims_predicts_and_stores_in_few_queries(
    champion, queued_study, published, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    serving.load_predictor(champion)  # warm, as in a worker
    # Was 17 (a second lock of the claimed row, two savepoints, a second versions query), then 13
    # with the events: the claim's select + compare-and-set update, the versions, and the result's
    # transaction (its savepoint here, the update, the insert, its release). The events of these
    # statuses ask nothing (a review version exists only once reviewed).
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(7):
        assert serving.predict_study(queued_study.pk) == "predicted"
    assert [status for status, _ in published] == ["predicting", "predicted"]
    queued_study.refresh_from_db()
    prediction = Prediction.objects.get(study=queued_study, role=PredictionRole.CHAMPION)
    assert queued_study.status == "predicted" and queued_study.inference_started_at is not None
    assert prediction.started_at == queued_study.inference_started_at and prediction.heatmap
    # a re-delivered task finds the result stored and does nothing
    assert serving.predict_study(queued_study.pk) == "skipped"


def test_claim_returns_the_locked_study_moved_on(queued_study, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        claimed = study_services.start_prediction(queued_study.pk)
        claimed.status = "changed by the caller before the commit"
    assert claimed.inference_started_at is not None
    assert published == [("predicting", queued_study.pk)]  # the status as committed


def test_champion_and_challenger_in_one_query_match_the_separate_selectors(
    champion, second_package, django_assert_num_queries
):
    assert selectors.get_champion_and_challenger() == (champion, None)
    challenger = services.register_model_version(second_package, alias="challenger")
    with django_assert_num_queries(1):
        both = selectors.get_champion_and_challenger()
    assert both == (selectors.get_champion(), selectors.get_challenger()) == (champion, challenger)


def test_a_claim_raced_by_another_delivery_is_decided_again_under_the_row_lock(
    queued_study, published, monkeypatch, django_capture_on_commit_callbacks
):
    """Between the claim's read and its compare-and-set another delivery claims the study: the
    update matches nothing and the locked path finds it `predicting`, as a re-delivery would."""
    advance = study_services._advance_study

    def raced(study, to_status, *, expected):
        other = Study.objects.get(pk=study.pk)
        study_services.transition_study(other, to_status)  # the other delivery wins the update
        return advance(study, to_status, expected=expected)

    monkeypatch.setattr(study_services, "_advance_study", raced)
    with django_capture_on_commit_callbacks(execute=True):
        claimed = study_services.start_prediction(queued_study.pk)
    assert claimed is not None and claimed.status == "predicting"
    assert published == [("predicting", queued_study.pk)]  # the one transition that happened


def test_a_result_stored_by_another_delivery_is_kept_and_the_late_one_dropped(
    queued_study, champion, published, prediction_result, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    with django_capture_on_commit_callbacks(execute=True):
        first = study_services.start_prediction(queued_study.pk)
        second = Study.objects.get(pk=queued_study.pk)  # a second delivery's copy, also `predicting`
        kept = study_services.record_prediction(first, model_version=champion, result=prediction_result())
        late = study_services.record_prediction(second, model_version=champion, result=prediction_result())
    assert kept is not None and late is None
    assert list(Prediction.objects.filter(study=queued_study).values_list("pk", flat=True)) == [kept.pk]
    _, files = default_storage.listdir(f"studies/{queued_study.pk}")
    heatmaps = [f"studies/{queued_study.pk}/{name}" for name in files if name.startswith("heatmap")]
    assert heatmaps == [kept.heatmap.name]  # the late one's heat-map is gone
    assert [status for status, _ in published] == ["predicting", "predicted"]


def test_a_result_for_a_study_that_left_predicting_is_refused(queued_study, champion, published, prediction_result):
    claimed = study_services.start_prediction(queued_study.pk)
    study_services.fail_study(Study.objects.get(pk=queued_study.pk), code="image_unreadable", reason="test")
    with pytest.raises(study_services.IllegalTransition):
        study_services.record_prediction(claimed, model_version=champion, result=prediction_result())
    assert not Prediction.objects.filter(study=queued_study).exists()
