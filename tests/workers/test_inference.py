"""The inference task, called as the worker calls it (synchronously here; the real
worker process and the embedded thread are covered in their own tests)."""

import io
from datetime import datetime

import pytest
from PIL import Image

from apps.studies.models import Prediction, StudyStatus
from workers.inference import run_inference


def test_no_deployed_model_fails_the_study_with_a_clear_reason(queued_study):
    assert run_inference(str(queued_study.pk)) == "failed"
    queued_study.refresh_from_db()
    assert queued_study.status == StudyStatus.FAILED
    assert queued_study.failure_reason == "no model is deployed"
    assert not Prediction.objects.exists()


def test_champion_prediction_is_stored_with_its_version(queued_study, champion):
    assert run_inference(str(queued_study.pk)) == "predicted"
    queued_study.refresh_from_db()
    assert queued_study.status == StudyStatus.PREDICTED
    prediction = queued_study.predictions.get()
    assert prediction.model_version == champion
    assert prediction.label in champion.classes
    assert set(prediction.probabilities) == set(champion.classes)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.latency_ms > 0
    with prediction.heatmap.open("rb") as fh:
        heatmap = Image.open(io.BytesIO(fh.read()))
    assert heatmap.size == (queued_study.width, queued_study.height)


def test_running_the_task_twice_never_duplicates_the_result(queued_study, champion):
    run_inference(str(queued_study.pk))
    assert run_inference(str(queued_study.pk)) == "skipped"
    assert queued_study.predictions.count() == 1


def test_a_redelivered_task_resumes_a_study_left_predicting(queued_study, champion):
    from apps.studies.services import transition_study

    transition_study(queued_study, StudyStatus.PREDICTING)  # the worker died here
    assert run_inference(str(queued_study.pk)) == "predicted"
    assert queued_study.predictions.count() == 1


def test_unknown_study_is_skipped(db):
    assert run_inference("00000000-0000-0000-0000-000000000000") == "skipped"


def test_out_of_distribution_image_gets_no_label(queued_study, champion, monkeypatch):
    from apps.modelops.services import load_predictor

    predictor = load_predictor(champion)
    real_predict = predictor.predict

    def predict_ood(pixels, **kwargs):
        result = real_predict(pixels, **kwargs)
        result.is_out_of_distribution = True
        return result

    monkeypatch.setattr(predictor, "predict", predict_ood)
    run_inference(str(queued_study.pk))
    queued_study.refresh_from_db()
    assert queued_study.status == StudyStatus.FAILED
    assert queued_study.failure_code == "not_a_chest_xray"
    assert not queued_study.predictions.exists()


def _histogram(name: str) -> tuple[float, float]:
    from prometheus_client import REGISTRY

    return (REGISTRY.get_sample_value(f"{name}_count") or 0.0, REGISTRY.get_sample_value(f"{name}_sum") or 0.0)


def test_the_prediction_records_when_it_was_queued_started_and_stored(queued_study, champion):
    before = _histogram("deepmed_upload_to_prediction_seconds")
    assert run_inference(str(queued_study.pk)) == "predicted"
    queued_study.refresh_from_db()
    prediction = queued_study.predictions.get()
    assert None not in (prediction.queued_at, prediction.started_at, prediction.finished_at)
    assert queued_study.created_at <= prediction.queued_at <= prediction.started_at <= prediction.finished_at
    assert (prediction.queued_at, prediction.started_at) == (queued_study.queued_at, queued_study.inference_started_at)
    # Upload → prediction goes into the histogram on /metrics once the result is stored.
    count, total = _histogram("deepmed_upload_to_prediction_seconds")
    assert count == before[0] + 1
    assert total - before[1] == pytest.approx((prediction.finished_at - queued_study.created_at).total_seconds())


def test_the_study_api_returns_the_timestamps(queued_study, champion, api_as):
    run_inference(str(queued_study.pk))
    body = api_as(queued_study.owner).get(f"/api/v1/studies/{queued_study.pk}").json()
    created, queued, started, finished = (
        datetime.fromisoformat(value)
        for value in (body["created_at"], *(body["prediction"][k] for k in ("queued_at", "started_at", "finished_at")))
    )
    assert created <= queued <= started <= finished


def test_the_histogram_is_exported_on_metrics(client, queued_study, champion):
    run_inference(str(queued_study.pk))
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "deepmed_upload_to_prediction_seconds_bucket" in text
    assert "deepmed_upload_to_prediction_seconds_count" in text
