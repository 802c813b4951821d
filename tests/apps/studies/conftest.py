"""Studies at each point of their life, made through the real services (the model result
is chosen by the test, so probabilities and confidence are known)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.studies.models import Explanation, StudyStatus
from apps.studies.services import record_prediction, start_prediction, transition_study
from ml_core.imaging import encode_png
from ml_core.serve import PredictionResult


def make_result(probabilities: dict[str, float], *, heatmap: bool = True, ood: bool = False) -> PredictionResult:
    label = max(probabilities, key=probabilities.get)
    overlay = np.zeros((64, 64, 4), dtype=np.uint8)
    overlay[16:48, 16:48] = (255, 0, 0, 160)
    return PredictionResult(
        label=label,
        probabilities=probabilities,
        confidence=probabilities[label],
        latency_ms=12.5,
        heatmap_png=encode_png(overlay) if heatmap else None,
        is_out_of_distribution=ood,
        model_name="cxr-test",
        model_version="7",
    )


@pytest.fixture
def prediction_result():
    """prediction_result(probabilities=None, heatmap=True, ood=False) -> a model result chosen by the test."""

    def make(probabilities=None, **kwargs) -> PredictionResult:
        return make_result(probabilities or {"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80}, **kwargs)

    return make


@pytest.fixture
def predict(champion, prediction_result):
    """predict(study, probabilities) -> the study after the real record_prediction service."""

    def run(study, probabilities=None, **kwargs):
        start_prediction(study.pk)
        record_prediction(study, model_version=champion, result=prediction_result(probabilities, **kwargs))
        study.refresh_from_db()
        return study

    return run


@pytest.fixture
def predicted_study(queued_study, predict):
    return predict(queued_study)


@pytest.fixture
def explained_study(predicted_study):
    transition_study(predicted_study, StudyStatus.EXPLAINING)
    Explanation.objects.create(study=predicted_study, text="The model saw patchy shadows in the lower right lung.",
                               engine="template")
    return transition_study(predicted_study, StudyStatus.EXPLAINED)


@pytest.fixture
def reviewed_study(explained_study, physician):
    from apps.review.models import Review

    Review.objects.create(study=explained_study, physician=physician, decision="correct", final_label="NORMAL",
                          note="No consolidation on my reading.", version=1)
    return transition_study(explained_study, StudyStatus.REVIEWED)


@pytest.fixture
def stored_files(_isolated_media):
    """stored_files() -> every file now in this test's storage folder."""
    return lambda: sorted(p for p in _isolated_media.rglob("*") if p.is_file()) if _isolated_media.exists() else []
