"""Export a trained model to ONNX with two outputs (logits, features) and check parity.

The legacy TorchScript exporter (``dynamo=False``) is the default: on this CPU it
exports EfficientNet-B0 in ~1 s versus ~14 s for the dynamo exporter, with the same
ORT parity. ``dynamo=True`` remains available.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml_core.models import LogitsAndFeatures
from ml_core.preprocessing import PreprocessConfig, preprocess

INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "features")
DEFAULT_TOLERANCE = 1e-4


class OnnxParityError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


def export_onnx(
    model: nn.Module,
    preprocess_cfg: PreprocessConfig,
    path: str | Path,
    *,
    opset: int = 17,
    dynamo: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    sample: np.ndarray | None = None,
) -> Path:
    """Write ``path`` (input N x C x S x S -> logits N x K, features N x C' x h x w).

    Parity against torch is measured on ``sample`` (N x C x S x S, e.g. real
    preprocessed images) or on a synthetic batch, raises OnnxParityError above
    ``tolerance`` and is recorded in the ONNX metadata (see ``read_export_info``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = sample if sample is not None else parity_batch(preprocess_cfg)
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    wrapper = LogitsAndFeatures(model)
    was_training = model.training
    model.eval()
    try:
        start = time.perf_counter()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            if dynamo:
                torch.onnx.export(
                    wrapper,
                    (x_t,),
                    str(path),
                    input_names=[INPUT_NAME],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    wrapper,
                    (x_t,),
                    str(path),
                    input_names=[INPUT_NAME],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
                    opset_version=opset,
                    dynamo=False,
                )
        export_seconds = time.perf_counter() - start
        logits_diff, features_diff = onnx_parity(model, path, x)
    finally:
        model.train(was_training)

    # Features can be large in magnitude: judge them relative to their scale.
    with torch.no_grad():
        feat_scale = max(1.0, float(wrapper(x_t)[1].abs().max()))
    if logits_diff > tolerance or features_diff > tolerance * feat_scale:
        raise OnnxParityError(
            f"ONNX export differs from torch: logits {logits_diff:.2e}, features {features_diff:.2e} "
            f"(tolerance {tolerance:.0e})"
        )
    _write_metadata(
        path,
        {
            "parity_max_abs_diff": f"{logits_diff:.3e}",
            "features_parity_max_abs_diff": f"{features_diff:.3e}",
            "export_seconds": f"{export_seconds:.3f}",
            "exporter": "dynamo" if dynamo else "torchscript",
            "preprocess": json.dumps(preprocess_cfg.to_dict(), sort_keys=True),
        },
    )
    return path


def parity_batch(cfg: PreprocessConfig, seed: int = 0) -> np.ndarray:
    """Two preprocessed synthetic images (batch of 2 also exercises the dynamic axis)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    smooth = ((np.sin(xx / 23.0) + np.cos(yy / 31.0) + 2) * 63).astype(np.uint8)
    noise = rng.integers(0, 256, size=(256, 256), dtype=np.uint8)
    return np.concatenate([preprocess(smooth, cfg), preprocess(noise, cfg)])


def onnx_parity(model: nn.Module, onnx_path: str | Path, x: np.ndarray) -> tuple[float, float]:
    """Max abs difference (logits, features) between torch eval and ONNX Runtime on x."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    ort_logits, ort_features = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.astype(np.float32)})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            t_logits, t_features = LogitsAndFeatures(model)(torch.from_numpy(x.astype(np.float32)))
    finally:
        model.train(was_training)
    return (
        float(np.abs(ort_logits - t_logits.numpy()).max()),
        float(np.abs(ort_features - t_features.numpy()).max()),
    )


def read_export_info(onnx_path: str | Path) -> dict[str, str]:
    """The metadata ``export_onnx`` recorded in the file (parity, timing, exporter...)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _write_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
