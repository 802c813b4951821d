import json
import shutil

import numpy as np
import pytest

from ml_core.package import PackageError, PackageMeta, load_package_meta, save_package
from ml_core.preprocessing import PreprocessConfig
from ml_core.serve import load_predictor


def test_round_trip(tiny_package):
    meta = load_package_meta(tiny_package)
    assert isinstance(meta, PackageMeta)
    assert meta.name == "cxr-tiny" and meta.version == "1"
    assert meta.classes == ["COVID-19", "NORMAL", "PNEUMONIA"]
    assert meta.architecture == "cxr_tiny"
    assert meta.preprocess == PreprocessConfig(image_size=64)
    assert meta.temperature == 1.0 and meta.ood is None
    assert meta.onnx_parity_max_abs_diff is not None and meta.onnx_parity_max_abs_diff < 1e-4
    assert meta.created_at and len(meta.model_sha256) == 64
    assert PackageMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    raw = json.loads((tiny_package / "package.json").read_text())
    for key in (
        "name",
        "version",
        "classes",
        "architecture",
        "preprocess",
        "temperature",
        "cam_weights",
        "ood",
        "metrics",
        "dataset_manifest_sha256",
        "created_at",
        "onnx_parity_max_abs_diff",
    ):
        assert key in raw
    assert np.load(tiny_package / raw["cam_weights"]).shape[0] == 3


def test_resave_with_new_temperature_and_metrics(tiny_package, tmp_path):
    meta = load_package_meta(tiny_package)
    out = save_package(
        tmp_path / "v2",
        onnx_path=tiny_package / "model.onnx",
        name=meta.name,
        version="2",
        classes=meta.classes,
        architecture=meta.architecture,
        preprocess=meta.preprocess,
        cam_weights=np.load(tiny_package / meta.cam_weights),
        temperature=1.7,
        metrics={"macro_f1": 0.5},
        dataset_manifest_sha256="ab" * 32,
    )
    again = load_package_meta(out)
    assert again.temperature == 1.7 and again.metrics == {"macro_f1": 0.5}
    assert again.dataset_manifest_sha256 == "ab" * 32
    assert again.onnx_parity_max_abs_diff == meta.onnx_parity_max_abs_diff  # read back from the ONNX file


def test_inconsistent_inputs_are_refused(tiny_package, tmp_path):
    common = {
        "onnx_path": tiny_package / "model.onnx",
        "name": "x",
        "version": "1",
        "architecture": "cxr_tiny",
        "preprocess": PreprocessConfig(),
    }
    with pytest.raises(PackageError):
        save_package(tmp_path / "a", classes=["A", "B"], cam_weights=np.zeros((3, 64)), **common)
    with pytest.raises(PackageError):
        save_package(tmp_path / "b", classes=["A", "A", "B"], cam_weights=np.zeros((3, 64)), **common)
    with pytest.raises(PackageError):
        save_package(tmp_path / "c", classes=["A", "B", "C"], cam_weights=np.zeros((3, 64)), temperature=0.0, **common)


def test_missing_files_and_tampered_model_are_detected(tiny_package, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_package, broken)
    (broken / "cam_weights.npy").unlink()
    with pytest.raises(PackageError, match="cam_weights"):
        load_package_meta(broken)
    with pytest.raises(PackageError):
        load_package_meta(tmp_path / "nowhere")

    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_package, tampered)
    with open(tampered / "model.onnx", "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(PackageError, match="sha256"):
        load_predictor(tampered)
