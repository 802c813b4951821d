"""The starter model shipped in ml_core/starter/: deployed on a fresh install, offered on an upgrade.

A fresh install (no champion) deploys the shipped package as champion. An install that already
serves a model keeps it: when DeepMed ships a newer starter (another model file than any version
registered so far), the new starter is registered as the *challenger*, so it runs in shadow on new
studies and an admin can compare it and promote it through the quality gates from the console.
Nothing is offered while an admin's own challenger is in place (it would replace it).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from apps.modelops.models import Alias, ModelVersion
from apps.modelops.selectors import get_challenger, get_champion
from apps.modelops.services.registry import register_model_version
from ml_core.package import PackageError, load_package_meta

logger = logging.getLogger(__name__)

DEPLOYED = "deployed"  # no champion: the starter is now the champion
OFFERED = "offered"  # a newer starter is now the challenger
CURRENT = "current"  # nothing to do: the shipped starter is registered already
CHALLENGER_IN_PLACE = "challenger_in_place"  # a newer starter, but an admin's challenger holds the alias


@dataclass(frozen=True)
class StarterInstall:
    outcome: str
    version: ModelVersion | None  # the version registered now, or the champion when nothing changed


def install_shipped_starter(source: Path, *, with_mlflow: bool = False) -> StarterInstall:
    """Deploy the starter package at ``source`` on a fresh install, or offer it as challenger when
    the install serves another model and has never registered this one (see the module docstring)."""
    shipped = load_package_meta(source)
    champion = get_champion()
    if champion is not None and _registered_model_file(shipped.model_sha256):
        return StarterInstall(CURRENT, champion)
    if champion is not None and get_challenger() is not None:
        return StarterInstall(CHALLENGER_IN_PLACE, champion)
    alias = Alias.CHAMPION if champion is None else Alias.CHALLENGER
    # Copied out of the source tree so a deployed package never changes under a running worker;
    # one directory per shipped version, so an offered starter never overwrites the champion's files.
    target = Path(settings.DEEPMED_MODEL_DIR) / ("starter" if champion is None else f"starter-v{shipped.version}")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    registry = _register_in_mlflow(target, alias) if with_mlflow else {}
    version = register_model_version(target, alias=alias, **registry)
    return StarterInstall(DEPLOYED if champion is None else OFFERED, version)


def _registered_model_file(model_sha256: str) -> bool:
    """Whether any registered version serves the model file with this sha256."""
    for uri in ModelVersion.objects.values_list("package_uri", flat=True):
        try:
            if load_package_meta(Path(uri)).model_sha256 == model_sha256:
                return True
        except (PackageError, OSError, ValueError):  # a removed or unreadable package is not this one
            continue
    return False


def _register_in_mlflow(package_dir: Path, alias: str) -> dict[str, str]:
    """MLflow registry version for the package, or {} (database only) when MLflow is unavailable."""
    try:
        from ml_core import tracking

        uri = settings.MLFLOW_TRACKING_URI
        name, version = tracking.register_package(uri, package_dir, settings.DEEPMED_REGISTERED_MODEL, alias=alias)
        run_id = next(v.run_id for v in tracking.list_versions(uri, name) if v.version == version)
    except Exception as exc:  # MLflow is best effort here: the database mirror still deploys the model
        logger.warning("MLflow registration of the starter skipped: %s", exc)
        return {}
    return {"registered_name": name, "version": version, "mlflow_run_id": run_id}
