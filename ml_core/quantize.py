"""int8 quantisation of an exported ONNX model (onnxruntime.quantization).

- dynamic: weights int8, activations quantised on the fly. Good for MatMul-heavy
  models (ViT/DeiT); on this CPU it makes EfficientNet's convolutions far slower.
- static (QDQ): weights and activations int8 with ranges calibrated on real images; the stem
  and, optionally, the few nodes ``rank_sensitive_nodes`` finds most harmed by int8 stay fp32.

Which one serves is decided by measurement (``ml_core.pipeline.choose_format``),
not assumed. Both keep the model's two outputs (logits, features) in float32.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("fp32", "int8-dynamic", "int8-static")


def _pre_process(src: Path, dst: Path) -> Path:
    """Shape inference + graph optimisation first, as onnxruntime recommends before quantising."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def quantize_dynamic(src: str | Path, dst: str | Path) -> Path:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _pre_process(src, Path(tmp) / "prep.onnx")
        ort_quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    return dst


class _BatchReader:
    """CalibrationDataReader over preprocessed N x C x S x S batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._items = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

    def get_next(self):
        return next(self._items, None)


def quantize_static(
    src: str | Path,
    dst: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    input_name: str = "input",
    per_channel: bool = True,
    keep_input_conv_fp32: bool = True,
    keep_fp32: Sequence[str] = (),
    reduce_range: bool = True,
) -> Path:
    """QDQ int8 with activation ranges from ``calibration`` (preprocessed batches of real images).

    ``keep_input_conv_fp32``: the stem convolution reads the normalised image directly and
    was measured to cause most of the int8 error (ResNet-10t, 128 px: top-1 agreement with
    fp32 84% -> 99% when it stays fp32, same latency), so it is excluded by default. It also
    pays for EfficientNet-Lite0 (starter v4, 224 px, validation: agreement 97.7% -> 98.5%,
    mean absolute logit error 0.138 -> 0.088), whose stem reads the input directly since the
    export folds its "SAME" padding into the Conv (``ml_core.export``); before, a Pad stood
    between them and the stem was quantised.

    ``keep_fp32``: names of further nodes (of the pre-processed graph) left in fp32, e.g. the
    ones ``rank_sensitive_nodes`` picks (mixed precision).

    ``reduce_range``: 7-bit weights. On x86 CPUs without VNNI (AVX2 only) ONNX Runtime's u8s8
    kernels add pairs of uint8 x int8 products in int16, which saturates with 8-bit weights, so
    the same file computes different logits there than on the (VNNI) machine that built and
    measured it: starter v4.2 on an AVX2-only host, test macro-F1 0.950 -> 0.947, PNEUMONIA
    recall 0.926 -> 0.919, mean |logit - fp32| 0.036 -> 0.085. With 7-bit weights no pair sum
    can saturate, so what the build measures is what every x86 host serves.
    """
    if not len(calibration):
        raise ValueError("static quantisation needs calibration batches (real, preprocessed images)")
    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _pre_process(src, Path(tmp) / "prep.onnx")
        exclude = _input_convs(prepared, input_name) if keep_input_conv_fp32 else []
        _quantize_prepared(
            prepared, dst, calibration, input_name, per_channel, [*exclude, *keep_fp32], reduce_range=reduce_range
        )
    return dst


def _quantize_prepared(
    prepared: Path,
    dst: Path,
    calibration: Sequence[np.ndarray],
    input_name: str,
    per_channel: bool,
    exclude: Sequence[str],
    cache: Path | None = None,
    *,
    reduce_range: bool = True,
) -> Path:
    """The one call into onnxruntime's static QDQ quantiser. ``cache``: a JSON file of activation
    ranges, written by the first call and read by later ones (ranges do not depend on ``exclude``),
    so a sensitivity search calibrates once instead of once per variant."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    ort_quantize_static(
        str(prepared),
        str(dst),
        _BatchReader(input_name, calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=reduce_range,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=list(exclude),
        calibration_cache_path=None if cache is None else str(cache),
    )
    return dst


# Nodes that carry weights: where keeping fp32 changes what is computed (Add, pooling and
# activations follow their neighbours; on starter v4.1 excluding them alone changed nothing).
SENSITIVITY_OP_TYPES = ("Conv", "Gemm", "MatMul")


@dataclass
class Sensitivity:
    """Outcome of ``rank_sensitive_nodes``: the nodes to keep fp32 and the probe errors behind them."""

    keep_fp32: list[str]
    probe_images: int
    error_int8: float  # mean |logit int8 - logit fp32| on the probe images, only the stem fp32
    error_mixed: float  # the same with ``keep_fp32`` in fp32 too
    ranked: dict[str, float] = field(default_factory=dict)  # node -> error when it alone is also fp32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_sensitive_nodes(
    src: str | Path,
    calibration: Sequence[np.ndarray],
    probe: Sequence[np.ndarray],
    *,
    max_nodes: int = 8,
    input_name: str = "input",
    output_name: str = "logits",
    per_channel: bool = True,
    reduce_range: bool = True,
) -> Sensitivity:
    """The nodes worth keeping fp32 in a static int8 model, chosen without labels.

    Every weighted node is scored by the mean absolute error of ``output_name`` against the fp32
    model on ``probe`` (preprocessed batches, not the calibration images) when that node alone
    is kept fp32 besides the stem. Nodes that lower the error are then added in that order while
    each addition still lowers the error, up to ``max_nodes``. Why: on starter v4.1 the error came
    mostly from a few early layers (first depthwise and pointwise convolutions, two projections);
    keeping four of them fp32 halved the logit error at the same latency, while all-int8
    variants of calibration could not close the gap.
    """
    src = Path(src)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepared = _pre_process(src, tmp / "prep.onnx")
        stem = _input_convs(prepared, input_name)
        cache = tmp / "ranges.json"
        reference = _run_output(prepared, probe, input_name, output_name)

        def error(keep: Sequence[str]) -> float:
            path = _quantize_prepared(
                prepared,
                tmp / "q.onnx",
                calibration,
                input_name,
                per_channel,
                [*stem, *keep],
                cache,
                reduce_range=reduce_range,
            )
            return float(np.abs(_run_output(path, probe, input_name, output_name) - reference).mean())

        import onnx

        nodes = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in SENSITIVITY_OP_TYPES]
        base = error([])
        alone = {name: error([name]) for name in nodes if name not in stem} if max_nodes > 0 else {}
        keep, best = [], base
        for name in sorted((n for n in alone if alone[n] < base), key=alone.get)[:max_nodes]:
            err = error([*keep, name])
            if err >= best:
                break  # errors are not additive: stop at the first node that no longer helps
            keep, best = [*keep, name], err
    n_probe = sum(len(b) for b in probe)
    return Sensitivity(keep, n_probe, base, best, dict(sorted(alone.items(), key=lambda kv: kv[1])))


def _run_output(model: Path, batches: Sequence[np.ndarray], input_name: str, output_name: str) -> np.ndarray:
    from ml_core.serve import ort_session

    session = ort_session(model, intra_op_threads=1)
    return np.concatenate([session.run([output_name], {input_name: b})[0] for b in batches])


def _input_convs(model_path: Path, input_name: str) -> list[str]:
    """Names of the Conv nodes that read the graph input directly."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if n.op_type == "Conv" and input_name in n.input]


def quantize(
    src: str | Path,
    dst: str | Path,
    fmt: str,
    calibration: Sequence[np.ndarray] = (),
    keep_fp32: Sequence[str] = (),
    *,
    reduce_range: bool = True,
) -> Path:
    """Write ``dst`` in format ``fmt`` (fp32 copies the file unchanged; ``keep_fp32`` and
    ``reduce_range``: int8-static only, see ``quantize_static``)."""
    if fmt == "fp32":
        import shutil

        if Path(src).resolve() != Path(dst).resolve():
            shutil.copyfile(src, dst)
        return Path(dst)
    if fmt == "int8-dynamic":
        return quantize_dynamic(src, dst)
    if fmt == "int8-static":
        return quantize_static(src, dst, calibration, keep_fp32=keep_fp32, reduce_range=reduce_range)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
