import numpy as np
import pytest
import torch

from ml_core.export import OnnxParityError, export_onnx, fold_pads_into_convs, freeze_same_padding, read_export_info
from ml_core.imaging import decode_image
from ml_core.models import ModelConfig, build_model, classifier_weights
from ml_core.package import save_package
from ml_core.preprocessing import PreprocessConfig, preprocess
from ml_core.serve import load_predictor
from ml_core.testing import make_xray_like_png


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory):
    """A model with non-trivial BatchNorm statistics (as after training) + its package."""
    torch.manual_seed(3)
    model = build_model(ModelConfig(architecture="cxr_tiny", num_classes=3))
    model.train()
    with torch.no_grad():  # populate running stats so eval-mode BN is not the identity
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64) * 2 + 0.5)
    model.eval()
    cfg = PreprocessConfig(image_size=64, resize="letterbox")
    directory = tmp_path_factory.mktemp("export")
    onnx_path = export_onnx(model, cfg, directory / "model.onnx")
    save_package(
        directory,
        onnx_path=onnx_path,
        name="t",
        version="1",
        classes=["A", "B", "C"],
        architecture="cxr_tiny",
        preprocess=cfg,
        cam_weights=classifier_weights(model),
    )
    return model, cfg, directory


def test_onnx_and_torch_agree_on_the_same_file_through_the_same_preprocess(trained_like, tmp_path):
    model, cfg, directory = trained_like
    image_file = tmp_path / "xray.png"
    image_file.write_bytes(make_xray_like_png(300, seed=11))
    pixels = decode_image(image_file.read_bytes()).pixels

    with torch.no_grad():
        torch_probs = torch.softmax(model(torch.from_numpy(preprocess(pixels, cfg))), dim=1)[0].numpy()
    predictor = load_predictor(directory)
    served = predictor.predict(pixels, with_heatmap=False).probabilities
    assert predictor.meta.preprocess == cfg  # serving reads the training config from the package
    np.testing.assert_allclose([served[c] for c in predictor.classes], torch_probs, atol=1e-4)


def test_dynamic_batch_and_recorded_parity(trained_like):
    model, cfg, directory = trained_like
    predictor = load_predictor(directory)
    batch = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
    logits, features = predictor.run(batch)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    assert logits.shape == (5, 3) and features.shape[0] == 5 and features.ndim == 4
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    info = read_export_info(directory / "model.onnx")
    assert float(info["parity_max_abs_diff"]) < 1e-4
    assert predictor.meta.onnx_parity_max_abs_diff == float(info["parity_max_abs_diff"])
    assert info["exporter"] == "torchscript"


def test_parity_failure_is_raised(tmp_path):
    model = build_model(ModelConfig(architecture="cxr_tiny", num_classes=2))
    with pytest.raises(OnnxParityError):
        export_onnx(model, PreprocessConfig(image_size=32), tmp_path / "m.onnx", tolerance=-1.0)
    assert model.training  # export restores the caller's train/eval mode


@pytest.mark.parametrize("image_size", [64, 67])  # 67: odd sizes give other paddings at every stride-2 conv
def test_tf_same_padding_exports_as_a_plain_conv_graph_with_parity(tmp_path, image_size):
    import onnx

    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="tf_efficientnet_lite0", num_classes=3)).eval()
    cfg = PreprocessConfig(image_size=image_size)
    path = export_onnx(model, cfg, tmp_path / "lite0.onnx")

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"Pad", "Shape", "Gather", "Ceil"}  # no run-time padding arithmetic left
    info = read_export_info(path)
    assert info["pads_folded_into_convs"] == "5"  # the stem and four stride-2 depthwise convs
    batch = np.random.default_rng(1).normal(size=(3, 3, image_size, image_size)).astype(np.float32)
    logits, features = load_session_outputs(path, batch)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert features.shape[0] == 3


def load_session_outputs(path, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits", "features"], {"input": batch})


def test_freeze_same_padding_copies_only_models_that_need_it():
    from timm.layers import Conv2dSame

    tiny = build_model(ModelConfig(architecture="cxr_tiny", num_classes=2))
    assert freeze_same_padding(tiny, 64, 3) is tiny
    lite = build_model(ModelConfig(architecture="tf_efficientnet_lite0", num_classes=2)).eval()
    frozen = freeze_same_padding(lite, 64, 3)
    assert frozen is not lite
    assert not any(isinstance(m, Conv2dSame) for m in frozen.modules())
    assert sum(isinstance(m, Conv2dSame) for m in lite.modules()) == 5  # the caller's model is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(frozen(x), lite(x))


class _PadThenConv(torch.nn.Module):
    def __init__(self, pad, value=0.0):
        super().__init__()
        self.pad, self.value = pad, value
        self.conv = torch.nn.Conv2d(2 + sum(pad[4:]), 4, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, self.pad, value=self.value))


@pytest.mark.parametrize(
    ("pad", "value", "folded"),
    [
        ((0, 1, 0, 1), 0.0, 1),  # TF "SAME" at stride 2: merged with the conv's own padding of 1
        ((2, 0, 1, 3), 0.0, 1),
        ((0, 1, 0, 1), 0.5, 0),  # a non-zero fill is not a conv padding
        ((0, 1, 0, 1, 1, 0), 0.0, 0),  # pads channels too
    ],
)
def test_fold_pads_into_convs_keeps_outputs_and_refuses_what_a_conv_cannot_pad(tmp_path, pad, value, folded):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    module = _PadThenConv(pad, value).eval()
    x = torch.randn(1, 2, 9, 10)
    path = tmp_path / "m.onnx"
    torch.onnx.export(module, (x,), str(path), input_names=["input"], output_names=["out"], dynamo=False)

    assert fold_pads_into_convs(path) == folded
    assert sum(n.op_type == "Pad" for n in onnx.load(str(path)).graph.node) == 1 - folded
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x).numpy(), atol=1e-5)
