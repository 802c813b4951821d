"""The inference task's database work per study: claim, versions, result, in few round trips,
with the same status events as one transition at a time."""

from __future__ import annotations

import pytest

from apps.modelops import selectors, services
from apps.modelops.services import serving
from apps.studies import events
from apps.studies import services as study_services
from apps.studies.models import Prediction, PredictionRole

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(events, "publish_study_status", lambda study: sent.append((study.status, study.pk)))
    from apps.explanations import services as explanation_services

    monkeypatch.setattr(explanation_services, "enqueue_explanation", lambda study_id: None)  # not under test
    return sent


def test_predict_study_claims_predicts_and_stores_in_few_queries(
    champion, queued_study, published, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    serving.load_predictor(champion)  # warm, as in a worker
    # was 17: a second lock of the claimed row, two savepoints, a second versions query
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(11):
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
