"""Mixed-precision int8 (ml_core.quantize): a node whose weights int8 cannot hold is found without
labels and kept fp32, on a small hand-built ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml_core.quantize import quantize_static, rank_sensitive_nodes

C = 4  # channels


def _tiny_graph(path: Path) -> Path:
    """input -> stem Conv -> 'fragile' Conv -> 'plain' Conv -> pool -> Gemm -> logits.

    Each output channel of 'fragile' reads one input channel through a weight of 100 and the
    others through weights near 0.05; the stem feeds that channel zeros, so in fp32 the large
    weight does nothing, while per-channel int8 (scale 100/127) rounds the small ones to 0."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    stem = np.eye(C, dtype=np.float32)[:, :, None, None]
    stem[0] = 0.0  # channel 0 is always zero
    fragile = (rng.uniform(0.03, 0.07, (C, C)) * rng.choice([-1, 1], (C, C))).astype(np.float32)
    fragile[:, 0] = 100.0
    plain = rng.normal(0, 0.5, (C, C)).astype(np.float32)
    inits = [
        numpy_helper.from_array(stem, "w_stem"),
        numpy_helper.from_array(fragile[:, :, None, None], "w_fragile"),
        numpy_helper.from_array(plain[:, :, None, None], "w_plain"),
        numpy_helper.from_array(rng.normal(0, 1, (3, C)).astype(np.float32), "w_fc"),
        numpy_helper.from_array(np.zeros(3, np.float32), "b_fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w_stem"], ["a"], name="stem"),
        helper.make_node("Conv", ["a", "w_fragile"], ["b"], name="fragile"),
        helper.make_node("Conv", ["b", "w_plain"], ["c"], name="plain"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w_fc", "b_fc"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _batches(seed: int, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (8, C, 8, 8)).astype(np.float32) for _ in range(n)]


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    from ml_core.serve import ort_session

    return ort_session(path).run(["logits"], {"input": x})[0]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    return _tiny_graph(tmp_path_factory.mktemp("quant") / "tiny.onnx")


def _float_weight_nodes(path: Path) -> set[str]:
    """Conv/Gemm nodes whose weight is a plain float initializer (not DequantizeLinear output)."""
    import onnx

    graph = onnx.load(str(path)).graph
    inits = {i.name for i in graph.initializer}
    return {n.name for n in graph.node if n.op_type in ("Conv", "Gemm") and n.input[1] in inits}


def test_keep_fp32_leaves_the_named_node_float_and_quantises_the_rest(tiny_onnx, tmp_path):
    all_int8 = quantize_static(tiny_onnx, tmp_path / "int8.onnx", _batches(1))
    mixed = quantize_static(tiny_onnx, tmp_path / "mixed.onnx", _batches(1), keep_fp32=["fragile"])
    assert _float_weight_nodes(all_int8) == {"stem"}
    assert _float_weight_nodes(mixed) == {"stem", "fragile"}
    x = _batches(2, 1)[0]
    ref = _logits(tiny_onnx, x)
    err = {p.stem: np.abs(_logits(p, x) - ref).mean() for p in (all_int8, mixed)}
    assert err["mixed"] < err["int8"] / 5


def test_rank_sensitive_nodes_finds_the_fragile_node_without_labels(tiny_onnx):
    sensitivity = rank_sensitive_nodes(tiny_onnx, _batches(1), _batches(3), max_nodes=2)
    assert sensitivity.keep_fp32 == ["fragile"]  # 'plain' and 'fc' do not lower the error further
    assert next(iter(sensitivity.ranked)) == "fragile" and "stem" not in sensitivity.ranked
    assert sensitivity.error_mixed < sensitivity.error_int8 / 5
    assert sensitivity.probe_images == 32


def test_rank_sensitive_nodes_respects_max_nodes(tiny_onnx):
    none = rank_sensitive_nodes(tiny_onnx, _batches(1), _batches(3), max_nodes=0)
    assert none.keep_fp32 == [] and none.ranked == {} and none.error_mixed == none.error_int8


def _largest_int8_weight(path: Path) -> int:
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(path)).graph
    weights = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == TensorProto.INT8]
    return int(max(np.abs(w.astype(np.int32)).max() for w in weights))


def test_int8_weights_are_7_bit_by_default_so_pair_sums_cannot_saturate_on_avx2(tiny_onnx, tmp_path):
    """ONNX Runtime's u8s8 kernels on x86 without VNNI add two uint8 x int8 products in int16:
    255 x 127 x 2 overflows it, 255 x 64 x 2 does not."""
    default = quantize_static(tiny_onnx, tmp_path / "default.onnx", _batches(1))
    full = quantize_static(tiny_onnx, tmp_path / "full.onnx", _batches(1), reduce_range=False)
    assert _largest_int8_weight(full) == 127
    assert _largest_int8_weight(default) <= 64
    assert 255 * _largest_int8_weight(default) * 2 <= np.iinfo(np.int16).max
