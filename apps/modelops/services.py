"""Writes for model operations: registering packages, deploying, loading predictors."""

from __future__ import annotations

import threading
from pathlib import Path

from django.db import transaction

from apps.audit.services import record_event
from apps.modelops.models import Alias, ModelVersion
from ml_core.package import load_package_meta

_predictors: dict[tuple[int, str], object] = {}
_predictors_lock = threading.Lock()


@transaction.atomic
def register_model_version(package_dir: str | Path, *, alias: str = "", actor=None) -> ModelVersion:
    """Mirror a model package as a ModelVersion; alias 'champion' deploys it."""
    package_dir = Path(package_dir).resolve()
    meta = load_package_meta(package_dir)
    version, _ = ModelVersion.objects.update_or_create(
        registered_name=meta.name,
        version=str(meta.version),
        defaults={
            "classes": list(meta.classes),
            "metrics": meta.metrics or {},
            "package_uri": str(package_dir),
            "status": "ready",
            "created_by": actor if getattr(actor, "is_authenticated", False) else None,
        },
    )
    if alias:
        set_alias(version, alias, actor=actor)
    return version


@transaction.atomic
def set_alias(version: ModelVersion, alias: str, *, actor=None) -> ModelVersion:
    """Point `alias` at `version`; the version that held it is archived (champion) or cleared."""
    if alias not in Alias.values:
        raise ValueError(f"unknown alias {alias!r}")
    previous = ModelVersion.objects.select_for_update().filter(alias=alias).exclude(pk=version.pk)
    for old in previous:
        old.alias = Alias.ARCHIVED if alias == Alias.CHAMPION else Alias.NONE
        old.save(update_fields=["alias"])
    version.alias = alias
    version.save(update_fields=["alias"])
    record_event(actor=actor, action=f"model.alias.{alias or 'clear'}", obj=version,
                 detail={"previous": [str(v) for v in previous]})
    return version


def load_predictor(version: ModelVersion):
    """A warm predictor for `version`, loaded once per process. Keyed by version, so a newly
    promoted champion is picked up by the next task without restarting the worker."""
    from django.conf import settings

    from ml_core.serve import load_predictor as load_onnx_predictor

    key = (version.pk, version.package_uri)
    with _predictors_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = load_onnx_predictor(version.package_uri, intra_op_threads=settings.DEEPMED_INFERENCE_THREADS)
            _predictors.clear()  # keep one model in memory per process
            _predictors[key] = predictor
    return predictor
