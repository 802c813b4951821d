"""Serving: warm predictors per process, which versions a study is shown and shadowed with,
and the inference pipeline of one study (`predict_study`, the `inference` task's one call).
The Prediction rows themselves are written by apps.studies.services."""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from typing import Any

from django.conf import settings

from apps.modelops import selectors
from apps.modelops.models import ModelVersion
from apps.studies import services as study_services
from ml_core.imaging import ImageIntakeError

logger = logging.getLogger(__name__)


# Champion + challenger (shadow) are both warm in an inference worker.
_PREDICTOR_SLOTS = 2


_predictors: OrderedDict[tuple[int, str], object] = OrderedDict()


_predictors_lock = threading.Lock()


def load_predictor(version: ModelVersion):
    """A warm predictor for `version`, loaded once per process. Keyed by version, so a newly
    promoted champion is picked up by the next task without restarting the worker."""
    from ml_core.serve import load_predictor as load_onnx_predictor

    key = (version.pk, version.package_uri)
    with _predictors_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = load_onnx_predictor(version.package_uri, intra_op_threads=settings.DEEPMED_INFERENCE_THREADS)
            _predictors[key] = predictor
            while len(_predictors) > _PREDICTOR_SLOTS:
                _predictors.popitem(last=False)
        else:
            _predictors.move_to_end(key)
    return predictor


def _serving_candidates() -> tuple[ModelVersion | None, ModelVersion | None]:
    """(champion, challenger) when shadow or canary may run the challenger, else (champion, None)."""
    if settings.DEEPMED_SHADOW_ENABLED or settings.DEEPMED_CANARY_SHARE:
        return selectors.get_champion_and_challenger()
    return selectors.get_champion(), None


def warm_up_predictors() -> int:
    """Load the predictors a study may run (see _serving_candidates) before the first study needs
    them; returns how many are warm. Called when an inference worker starts (workers/__init__.py)."""
    versions = [version for version in _serving_candidates() if version is not None]
    for version in versions:
        load_predictor(version)
    return len(versions)


def choose_serving_versions(study_id) -> tuple[ModelVersion | None, ModelVersion | None]:
    """(version whose result is shown, version run in shadow). The champion is shown unless the
    canary share routes this study to the challenger (deterministic per study)."""
    champion, challenger = _serving_candidates()
    if champion is None or challenger is None:
        return champion, None
    share = settings.DEEPMED_CANARY_SHARE
    if share > 0 and random.Random(str(study_id)).random() < share:
        return challenger, champion
    return champion, challenger if settings.DEEPMED_SHADOW_ENABLED else None


def record_shadow_prediction(study, version: ModelVersion, pixels) -> Any:
    """Run `version` in shadow and store its Prediction with role=challenger (never shown to
    patients; apps.studies stores it). A failure here is logged and never touches the study."""
    try:
        result = load_predictor(version).predict(pixels, with_heatmap=False)
        return study_services.record_shadow_prediction(study, model_version=version, result=result)
    except Exception:
        logger.warning("shadow prediction of study %s by %s failed", study.pk, version, exc_info=True)
        return None


def predict_study(study_id) -> str:
    """The inference pipeline of one study (the `inference` task): claim it (queued →
    predicting), choose the versions (champion, or the challenger for the canary share), run the
    shown one and store its result (studies moves the study on, or fails it for an image that is
    not a chest X-ray), then the shadow one. A clear failure instead: `no_model`,
    `image_unreadable`. Returns "skipped" (nothing to do: a re-delivered task), "failed" or
    "predicted"."""
    study = study_services.start_prediction(study_id)
    if study is None:
        return "skipped"
    # Version check at every task: a promotion is picked up without restarting the worker.
    version, shadow = choose_serving_versions(study.pk)
    if version is None:
        study_services.fail_study(study, code="no_model", reason=study_services.NO_MODEL_REASON)
        return "failed"
    try:
        pixels = study_services.load_study_pixels(study)
    except (ImageIntakeError, FileNotFoundError) as exc:
        study_services.fail_study(study, code="image_unreadable", reason=f"The stored image could not be read: {exc}")
        return "failed"
    result = load_predictor(version).predict(pixels)
    prediction = study_services.record_prediction(study, model_version=version, result=result)
    if prediction is not None and shadow is not None:
        record_shadow_prediction(study, shadow, pixels)  # stored, never shown to patients
    return "predicted"
