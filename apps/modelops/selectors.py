from __future__ import annotations

from apps.modelops.models import Alias, ModelVersion


def get_champion() -> ModelVersion | None:
    """The deployed model version, or None when nothing is deployed."""
    return ModelVersion.objects.filter(alias=Alias.CHAMPION, status="ready").first()
