"""Review fixtures: the champion the studies were predicted by (a registry row) and a second
physician. Studies awaiting review come from tests.factories.StudyFactory(predicted=True, ...)."""

from __future__ import annotations

import pytest

from tests.factories import CLASSES, ModelVersionFactory, PhysicianFactory, StudyFactory


@pytest.fixture
def model_version(db):
    """The champion (v3, no package): StudyFactory records its predictions with it."""
    return ModelVersionFactory(version="3", champion=True, classes=CLASSES)


@pytest.fixture
def second_physician(db):
    return PhysicianFactory(username="dr-cuddy")


@pytest.fixture
def pneumonia_study(consenting_patient, model_version):
    """The consenting patient's study awaiting review: PNEUMONIA at 0.80."""
    return StudyFactory(
        predicted=True,
        owner=consenting_patient,
        model_version=model_version,
        probabilities={"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80},
    )


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
