import numpy as np
import pytest
import torch

from ml_core.export import OnnxParityError, export_onnx, read_export_info
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
