"""Shadow challenger: its prediction is stored (role=challenger) but patients only ever see the
champion's; agreement with the champion and with physicians is computed from those rows."""

from __future__ import annotations

import pytest

from apps.modelops import selectors, services
from apps.studies.models import Prediction, PredictionRole
from tests.factories import PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def challenger(champion, second_package):
    return services.register_model_version(second_package, alias="challenger")


def test_inference_stores_the_challenger_in_shadow_and_patients_see_the_champion(
    challenger, champion, queued_study, consenting_patient, api_client, django_capture_on_commit_callbacks
):
    from workers.inference import run_inference

    with django_capture_on_commit_callbacks(execute=False):  # the llm task is not under test
        assert run_inference(str(queued_study.pk)) == "predicted"
    shown = Prediction.objects.get(study=queued_study, role=PredictionRole.CHAMPION)
    shadow = Prediction.objects.get(study=queued_study, role=PredictionRole.CHALLENGER)
    assert shown.model_version == champion and shadow.model_version == challenger
    assert shadow.model_version_label == "2" and not shadow.heatmap

    api_client.force_authenticate(consenting_patient)
    body = api_client.get(f"/api/v1/studies/{queued_study.pk}").json()
    assert body["prediction"]["model_version"] == "1"
    assert "challenger" not in str(body)


def test_without_challenger_nothing_runs_in_shadow(champion, queued_study, django_capture_on_commit_callbacks):
    from workers.inference import run_inference

    with django_capture_on_commit_callbacks(execute=False):
        run_inference(str(queued_study.pk))
    assert list(Prediction.objects.filter(study=queued_study).values_list("role", flat=True)) == ["champion"]


def test_canary_share_one_serves_the_challenger(settings, challenger, champion, queued_study):
    settings.DEEPMED_CANARY_SHARE = 1.0
    assert services.choose_serving_versions(queued_study.pk) == (challenger, champion)
    settings.DEEPMED_CANARY_SHARE = 0.0
    assert services.choose_serving_versions(queued_study.pk) == (champion, challenger)
    settings.DEEPMED_SHADOW_ENABLED = False
    assert services.choose_serving_versions(queued_study.pk) == (champion, None)


def test_agreement_with_champion_and_physicians(challenger, champion, queued_study, physician):
    from apps.review.models import Review

    PredictionFactory(study=queued_study, model_version=champion, label="NORMAL", role="champion")
    PredictionFactory(study=queued_study, model_version=challenger, label="PNEUMONIA", role="challenger")
    assert selectors.shadow_agreement(challenger) == {"studies": 1, "agreed": 0, "rate": 0.0}
    first = Review.objects.create(study=queued_study, physician=physician, decision="confirm", final_label="NORMAL")
    assert selectors.physician_agreement(challenger)["rate"] == 0.0
    assert selectors.physician_agreement(champion)["rate"] == 1.0
    # A correction (newer review version) is what counts.
    Review.objects.create(
        study=queued_study,
        physician=physician,
        decision="correct",
        final_label="PNEUMONIA",
        version=2,
        supersedes=first,
    )
    assert selectors.physician_agreement(challenger) == {"reviews": 1, "agreed": 1, "rate": 1.0}


def test_predictor_cache_keeps_champion_and_challenger_warm(challenger, champion):
    first = services.load_predictor(champion)
    assert services.load_predictor(challenger) is not first
    assert services.load_predictor(champion) is first  # still cached: two slots
