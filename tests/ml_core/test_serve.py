import io

import numpy as np
import pytest
from PIL import Image

from ml_core.preprocessing import PreprocessConfig
from ml_core.serve import (
    ZONES,
    PredictionResult,
    _heatmap_lut,
    cam_in_image_space,
    class_activation_map,
    heatmap_rgba_png,
    load_predictor,
    lung_zone_summary,
    softmax,
)
from ml_core.testing import make_tiny_package, make_xray_like_pixels


def test_prediction_contract(predictor):
    pixels = make_xray_like_pixels(300, seed=5, height=220)  # non-square on purpose
    result = predictor.predict(pixels)
    assert isinstance(result, PredictionResult)
    assert list(result.probabilities) == ["COVID-19", "NORMAL", "PNEUMONIA"] == predictor.classes
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0.0 <= p <= 1.0 for p in result.probabilities.values())
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert result.confidence == pytest.approx(max(result.probabilities.values()))
    assert result.latency_ms > 0
    assert (result.model_name, result.model_version) == ("cxr-tiny", "1")
    assert result.ood_score is None and result.is_out_of_distribution is False

    heatmap = Image.open(io.BytesIO(result.heatmap_png))
    assert heatmap.format == "PNG" and heatmap.mode == "P" and "transparency" in heatmap.info  # alpha per entry
    heatmap = heatmap.convert("RGBA")
    assert heatmap.size == (300, 220)  # (width, height) of the input
    alpha = np.asarray(heatmap)[..., 3]
    assert alpha.min() == 0 and alpha.max() > 0  # transparent where activation is low

    regions = result.heatmap_regions
    assert set(regions["activation_share"]) == set(ZONES)
    assert sum(regions["activation_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert regions["dominant_region"] == max(regions["activation_share"], key=regions["activation_share"].get)
    as_dict = result.to_dict()
    assert "heatmap_png" not in as_dict and as_dict["label"] == result.label


def test_without_heatmap(predictor):
    result = predictor.predict(make_xray_like_pixels(128), with_heatmap=False)
    assert result.heatmap_png is None and result.heatmap_regions == {}


def test_batch_matches_single(predictor):
    images = [make_xray_like_pixels(s, seed=s) for s in (96, 128, 200)]
    batch = predictor.predict_batch(images)
    for img, res in zip(images, batch):
        single = predictor.predict(img, with_heatmap=False)
        for c in predictor.classes:
            assert res.probabilities[c] == pytest.approx(single.probabilities[c], abs=1e-5)


def test_temperature_changes_confidence_not_label(tmp_path):
    pixels = make_xray_like_pixels(128, seed=9)
    results = {
        t: load_predictor(make_tiny_package(tmp_path / f"t{t}", temperature=t)).predict(pixels, with_heatmap=False)
        for t in (0.25, 1.0, 4.0)
    }
    assert len({r.label for r in results.values()}) == 1
    assert results[0.25].confidence > results[1.0].confidence > results[4.0].confidence
    # Calibrated probabilities are softmax(logits / T): recover the logits from T=1.
    logits = np.log([results[1.0].probabilities[c] for c in results[1.0].probabilities])
    expected = softmax(logits[None], 0.25)[0]
    np.testing.assert_allclose(list(results[0.25].probabilities.values()), expected, atol=1e-5)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.isfinite(p).all() and p[0, 0] == pytest.approx(1.0)


def test_cam_is_relu_normalised():
    features = np.zeros((2, 4, 4), np.float32)
    features[0, 1, 2] = 3.0
    features[1, 0, 0] = 5.0
    cam = class_activation_map(features, np.array([1.0, -1.0]))
    assert cam.max() == 1.0 and cam[1, 2] == 1.0 and cam[0, 0] == 0.0  # negative evidence clipped
    assert class_activation_map(features, np.array([-1.0, -1.0])).max() == 0.0


def test_zone_summary_uses_radiological_convention():
    cam = np.zeros((300, 200), np.float32)
    cam[10:90, 10:80] = 1.0  # image top-left = patient's RIGHT upper zone
    summary = lung_zone_summary(cam)
    assert summary["dominant_region"] == "right upper zone"
    assert summary["activation_share"]["right upper zone"] == pytest.approx(1.0)
    cam2 = np.zeros((300, 200), np.float32)
    cam2[250:, 150:] = 1.0  # image bottom-right = patient's LEFT lower zone
    assert lung_zone_summary(cam2)["dominant_region"] == "left lower zone"
    assert lung_zone_summary(np.zeros((30, 30), np.float32))["dominant_region"] is None


def test_cam_mapping_undoes_letterbox():
    cfg = PreprocessConfig(image_size=64, resize="letterbox")
    # Image 100 high x 200 wide: content occupies rows 16..47 of the 64 x 64 input.
    # A CAM hot only in the top padding must vanish once mapped back to the image.
    cam = np.zeros((8, 8), np.float32)
    cam[0, :] = 1.0
    mapped = cam_in_image_space(cam, (100, 200), cfg)
    assert mapped.shape == (100, 200)
    assert mapped.max() < 0.05
    cam_mid = np.zeros((8, 8), np.float32)
    cam_mid[3:5, :] = 1.0
    assert cam_in_image_space(cam_mid, (100, 200), cfg)[50].min() > 0.5


def test_ood_gate_flags_noise_and_passes_xray_like(tiny_package_ood):
    predictor = load_predictor(tiny_package_ood)
    assert predictor.ood is not None and predictor.meta.ood["method"] == "mahalanobis"
    in_dist = [
        predictor.predict(make_xray_like_pixels(s, seed=7000 + i), with_heatmap=False)
        for i, s in enumerate((100, 160, 256, 400) * 5)
    ]
    rng = np.random.default_rng(0)
    noise = [predictor.predict(rng.integers(0, 256, (200, 200), dtype=np.uint8), with_heatmap=False) for _ in range(10)]
    flat = predictor.predict(np.full((200, 200), 255, np.uint8), with_heatmap=False)
    assert all(r.ood_score is not None for r in in_dist + noise)
    assert np.mean([r.is_out_of_distribution for r in in_dist]) <= 0.15
    assert all(r.is_out_of_distribution for r in noise) and flat.is_out_of_distribution
    assert min(r.ood_score for r in noise) > max(r.ood_score for r in in_dist)


def test_threads_are_set_explicitly(tiny_package):
    predictor = load_predictor(tiny_package, intra_op_threads=2)
    assert predictor.session.get_session_options().intra_op_num_threads == 2
    assert load_predictor(tiny_package).session.get_session_options().intra_op_num_threads == 1


def test_heatmap_png_decodes_to_the_lut_colours_and_stays_small():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:256, 0:300] / 256.0
    cam = np.clip(np.exp(-((yy - 0.4) ** 2 + (xx - 0.5) ** 2) * 6) + 0.05 * rng.random((256, 300)), 0, 1)
    png = heatmap_rgba_png(cam.astype(np.float32))
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == "P" and decoded.size == (300, 256)  # a palette whose entries carry their alpha
    rgba = decoded.convert("RGBA")
    np.testing.assert_array_equal(np.asarray(rgba), _heatmap_lut()[np.rint(cam * 64).astype(np.intp)])
    slow = io.BytesIO()
    rgba.save(slow, format="PNG", compress_level=6)
    assert len(png) < len(slow.getvalue())  # smaller than the RGBA file at the slow default level
