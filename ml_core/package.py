"""Model package: the one artefact that carries a model to serving.

A package is a directory::

    model.onnx         input N x C x S x S -> logits N x K, features N x C' x h x w
    cam_weights.npy    K x C' classifier weights (class activation maps)
    ood.npz            optional OOD reference statistics (see ml_core.ood)
    package.json       everything else (classes, preprocessing, calibration, metrics...)

Classes, preprocessing and calibration live *only* here, so the web app, workers and
evaluation read them from the package and cannot drift from what was trained.
numpy/json only: serving imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ml_core.ood import AutoencoderOOD, OODModel, save_ood
from ml_core.preprocessing import PreprocessConfig

PACKAGE_JSON = "package.json"
MODEL_FILE = "model.onnx"
CAM_WEIGHTS_FILE = "cam_weights.npy"
TORCH_WEIGHTS_FILE = "torch_weights.pt"  # optional fp16 state_dict: torch-eager benchmarks / fine-tuning
SCHEMA_VERSION = 1


class PackageError(ValueError):
    """A package directory that is incomplete or inconsistent."""


@dataclass
class PackageMeta:
    name: str
    version: str
    classes: list[str]
    architecture: str
    preprocess: PreprocessConfig
    temperature: float = 1.0  # softmax temperature from calibration; 1.0 = uncalibrated
    class_bias: list[float] | None = None  # per-class logit bias (bias-corrected temperature scaling)
    cam_weights: str = CAM_WEIGHTS_FILE
    ood: dict[str, Any] | None = None  # stub written by ml_core.ood.save_ood, or None
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset_manifest_sha256: str | None = None
    created_at: str = ""
    onnx_parity_max_abs_diff: float | None = None
    model_file: str = MODEL_FILE
    model_sha256: str = ""
    format: str = "fp32"  # fp32 | int8-dynamic | int8-static
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. training run id, code revision
    torch_weights: str | None = None  # TORCH_WEIGHTS_FILE when the package carries torch weights
    model_config: dict[str, Any] | None = None  # ml_core.models.ModelConfig.to_dict() of the trained net
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PackageMeta:
        data = dict(data)
        if data.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise PackageError(f"package schema {data['schema_version']} is newer than this code ({SCHEMA_VERSION})")
        data["preprocess"] = PreprocessConfig.from_dict(data["preprocess"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def save_package(
    directory: str | Path,
    *,
    onnx_path: str | Path,
    name: str,
    version: str,
    classes: list[str] | tuple[str, ...],
    architecture: str,
    preprocess: PreprocessConfig,
    cam_weights: np.ndarray,
    temperature: float = 1.0,
    class_bias: Sequence[float] | None = None,
    ood: OODModel | AutoencoderOOD | None = None,
    metrics: dict[str, Any] | None = None,
    dataset_manifest_sha256: str | None = None,
    onnx_parity_max_abs_diff: float | None = None,
    format: str = "fp32",
    extra: dict[str, Any] | None = None,
    torch_weights: str | Path | None = None,
    model_config: dict[str, Any] | None = None,
    extra_files: dict[str, str | Path] | None = None,
) -> Path:
    """Write a complete package into ``directory`` and return it.

    ``onnx_parity_max_abs_diff`` defaults to the value export_onnx recorded in the file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise PackageError(f"classes must be non-empty and unique, got {classes}")
    cam_weights = np.asarray(cam_weights, dtype=np.float32)
    if cam_weights.ndim != 2 or cam_weights.shape[0] != len(classes):
        raise PackageError(f"cam_weights must be {len(classes)} x C, got shape {cam_weights.shape}")
    if not temperature > 0:
        raise PackageError(f"temperature must be > 0, got {temperature}")
    if class_bias is not None and (len(class_bias) != len(classes) or not np.all(np.isfinite(class_bias))):
        raise PackageError(f"class_bias must be {len(classes)} finite numbers, got {class_bias}")

    model_dst = directory / MODEL_FILE
    if Path(onnx_path).resolve() != model_dst.resolve():
        shutil.copyfile(onnx_path, model_dst)
    if onnx_parity_max_abs_diff is None:
        onnx_parity_max_abs_diff = recorded_parity(model_dst)
    np.save(directory / CAM_WEIGHTS_FILE, cam_weights)
    ood_stub = save_ood(ood, directory) if ood is not None else None
    if torch_weights is not None and Path(torch_weights).resolve() != (directory / TORCH_WEIGHTS_FILE).resolve():
        shutil.copyfile(torch_weights, directory / TORCH_WEIGHTS_FILE)
    for rel, src in (extra_files or {}).items():  # e.g. an autoencoder OOD model
        if Path(src).resolve() != (directory / rel).resolve():
            shutil.copyfile(src, directory / rel)

    meta = PackageMeta(
        name=name,
        version=str(version),
        classes=classes,
        architecture=architecture,
        preprocess=preprocess,
        temperature=float(temperature),
        class_bias=None if class_bias is None else [float(b) for b in class_bias],
        cam_weights=CAM_WEIGHTS_FILE,
        ood=ood_stub,
        metrics=dict(metrics or {}),
        dataset_manifest_sha256=dataset_manifest_sha256,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        onnx_parity_max_abs_diff=onnx_parity_max_abs_diff,
        model_file=MODEL_FILE,
        model_sha256=file_sha256(model_dst),
        format=format,
        extra=dict(extra or {}),
        torch_weights=TORCH_WEIGHTS_FILE if torch_weights is not None else None,
        model_config=model_config,
    )
    write_package_meta(directory, meta)
    return directory


def write_package_meta(directory: Path, meta: PackageMeta) -> None:
    # Write-then-rename so a reader never sees a half-written package.json.
    tmp = directory / (PACKAGE_JSON + ".tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, directory / PACKAGE_JSON)


def update_package_extra(directory: str | Path, **values: Any) -> PackageMeta:
    """Add or replace keys of a saved package's `extra` (atomic rewrite of package.json)."""
    directory = Path(directory)
    meta = load_package_meta(directory)
    meta.extra.update(values)
    write_package_meta(directory, meta)
    return meta


def load_package_meta(directory: str | Path) -> PackageMeta:
    """Read and validate package.json (does not load the model)."""
    directory = Path(directory)
    meta_path = directory / PACKAGE_JSON
    if not meta_path.is_file():
        raise PackageError(f"no {PACKAGE_JSON} in {directory}")
    try:
        meta = PackageMeta.from_dict(json.loads(meta_path.read_text(encoding="utf-8")))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise PackageError(f"invalid {meta_path}: {exc}") from exc
    needed = [meta.model_file, meta.cam_weights, *([meta.ood["file"]] if meta.ood else [])]
    needed += [meta.torch_weights] if meta.torch_weights else []
    for rel in needed:
        if not (directory / rel).is_file():
            raise PackageError(f"package {directory} is missing {rel}")
    return meta


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_parity(onnx_path: str | Path) -> float | None:
    """The torch-vs-ONNX max abs logit difference ``export_onnx`` recorded in the file, if any."""
    try:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        return float(props["parity_max_abs_diff"])
    except Exception:  # not exported by export_onnx (or onnx missing): unknown, not an error
        return None
