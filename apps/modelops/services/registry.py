"""The registry mirror: ModelVersion rows mirror MLflow's registry (sync_registry re-reads
it; MLflow wins), and aliases (champion, challenger) move in both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.audit.services import record_event
from apps.modelops.models import Alias, ModelVersion
from ml_core.package import load_package_meta


@transaction.atomic
def register_model_version(
    package_dir: str | Path,
    *,
    alias: str = "",
    actor=None,
    registered_name: str = "",
    version: str = "",
    mlflow_run_id: str = "",
) -> ModelVersion:
    """Mirror a model package as a ModelVersion; alias 'champion' deploys it.

    `registered_name`/`version` override the package's own (an MLflow registry version)."""
    package_dir = Path(package_dir).resolve()
    meta = load_package_meta(package_dir)
    defaults: dict[str, Any] = {
        "classes": list(meta.classes),
        "metrics": meta.metrics or {},
        "package_uri": str(package_dir),
        "status": "ready",
        "dataset_manifest_sha256": meta.dataset_manifest_sha256 or "",
    }
    if getattr(actor, "is_authenticated", False):
        defaults["created_by"] = actor
    if mlflow_run_id:
        defaults["mlflow_run_id"] = mlflow_run_id
    model_version, _ = ModelVersion.objects.update_or_create(
        registered_name=registered_name or meta.name, version=str(version or meta.version), defaults=defaults
    )
    if alias:
        set_alias(model_version, alias, actor=actor)
    return model_version


@transaction.atomic
def set_alias(version: ModelVersion, alias: str, *, actor=None) -> ModelVersion:
    """Point `alias` at `version` in the DB mirror (and MLflow when the version is registered
    there); the version that held it is archived (champion) or cleared."""
    if alias not in Alias.values:
        raise ValueError(f"unknown alias {alias!r}")
    previous = (
        list(ModelVersion.objects.select_for_update().filter(alias=alias).exclude(pk=version.pk)) if alias else []
    )
    for old in previous:
        old.alias = Alias.ARCHIVED if alias == Alias.CHAMPION else Alias.NONE
        old.save(update_fields=["alias"])
    version.alias = alias
    version.save(update_fields=["alias"])
    if alias in (Alias.CHAMPION, Alias.CHALLENGER):
        _mirror_alias_to_mlflow(version, alias, previous)
    record_event(
        actor=actor,
        action=f"model.alias.{alias or 'clear'}",
        obj=version,
        detail={"previous": [str(v) for v in previous]},
    )
    return version


def _mirror_alias_to_mlflow(version: ModelVersion, alias: str, previous: list[ModelVersion]) -> None:
    """Move the alias in MLflow too. A version registered by hand (e.g. the starter) lives only in
    the mirror: then the alias is removed from the MLflow version that held it."""
    from ml_core import tracking

    uri = settings.MLFLOW_TRACKING_URI
    if version.mlflow_run_id:
        tracking.set_alias(uri, version.registered_name, version.version, alias)
    for old in previous:
        if old.mlflow_run_id and (not version.mlflow_run_id or old.registered_name != version.registered_name):
            tracking.delete_alias(uri, old.registered_name, alias)


def sync_registry(*, registered_name: str = "") -> list[ModelVersion]:
    """Re-read the MLflow registry into the ModelVersion mirror (versions, run ids, aliases);
    packages missing locally are downloaded. MLflow wins on every difference."""
    from ml_core import tracking

    name = registered_name or settings.DEEPMED_REGISTERED_MODEL
    synced = []
    for entry in tracking.list_versions(settings.MLFLOW_TRACKING_URI, name):
        existing = ModelVersion.objects.filter(registered_name=name, version=str(entry.version)).first()
        package_dir = Path(existing.package_uri) if existing else None
        if package_dir is None or not (package_dir / "package.json").exists():
            package_dir = tracking.download_package(
                settings.MLFLOW_TRACKING_URI,
                name,
                str(entry.version),
                settings.DEEPMED_MODEL_DIR / name / str(entry.version),
            )
        mirrored = register_model_version(
            package_dir, registered_name=name, version=str(entry.version), mlflow_run_id=entry.run_id
        )
        synced.append(mirrored)
        wanted = next((a for a in (Alias.CHAMPION, Alias.CHALLENGER) if a in entry.aliases), None)
        if wanted and mirrored.alias != wanted:
            with transaction.atomic():
                ModelVersion.objects.filter(alias=wanted).exclude(pk=mirrored.pk).update(
                    alias=Alias.ARCHIVED if wanted == Alias.CHAMPION else Alias.NONE
                )
                ModelVersion.objects.filter(pk=mirrored.pk).update(alias=wanted)
        elif not wanted and mirrored.alias in (Alias.CHAMPION, Alias.CHALLENGER):
            ModelVersion.objects.filter(pk=mirrored.pk).update(alias=Alias.ARCHIVED)
        mirrored.refresh_from_db()
    record_event(
        actor=None,
        action="model.registry.sync",
        object_type="modelops.registry",
        object_id=name,
        detail={"versions": [v.version for v in synced]},
    )
    return synced
