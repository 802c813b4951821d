"""Studies awaiting review with model results chosen by the test, made through the real
intake and prediction services (one distinct generated image per study)."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from ml_core.serve import PredictionResult
from ml_core.testing import make_xray_like_png

CLASSES = ["COVID-19", "NORMAL", "PNEUMONIA"]
_seeds = itertools.count(100)


@pytest.fixture
def model_version(db):
    from apps.modelops.models import ModelVersion

    return ModelVersion.objects.create(
        registered_name="deepmed-cxr", version="3", alias="champion", classes=CLASSES, package_uri="/nowhere"
    )


@pytest.fixture
def second_physician(db):
    from apps.accounts.services import create_user

    return create_user(username="dr-cuddy", password="a-long-test-password", role="physician", validate=False)


@pytest.fixture
def make_study(consenting_patient, model_version):
    """make_study(probabilities, hours_old=0, version=model_version) -> a study in `predicted`."""
    from apps.studies.models import Study
    from apps.studies.services import create_study, record_prediction, start_prediction

    def make(probabilities: dict[str, float], *, hours_old: float = 0, version=None, owner=None):
        study = create_study(owner=owner or consenting_patient, data=make_xray_like_png(size=64, seed=next(_seeds)))
        start_prediction(study.pk)
        label = max(probabilities, key=probabilities.get)
        result = PredictionResult(
            label=label,
            probabilities=probabilities,
            confidence=probabilities[label],
            latency_ms=5.0,
            heatmap_png=None,
            model_name="cxr-test",
            model_version=(version or model_version).version,
        )
        record_prediction(study, model_version=version or model_version, result=result)
        if hours_old:
            Study.objects.filter(pk=study.pk).update(created_at=timezone.now() - timezone.timedelta(hours=hours_old))
        study.refresh_from_db()
        return study

    return make


@pytest.fixture
def pneumonia_study(make_study):
    return make_study({"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80})


@pytest.fixture
def listen():
    """listen(group) -> receive(): the next message sent to `group` on the channel layer (5 s at most)."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    def subscribe(group: str):
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(group, channel)

        async def receive():
            return await asyncio.wait_for(layer.receive(channel), timeout=5)

        return async_to_sync(receive)

    return subscribe
