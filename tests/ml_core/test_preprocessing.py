import numpy as np
import pytest

from ml_core.preprocessing import PreprocessConfig, content_box, letterbox_geometry, preprocess
from ml_core.testing import make_xray_like_pixels


def test_shape_dtype_and_grey_replication():
    cfg = PreprocessConfig(image_size=64, channels=3)
    x = preprocess(make_xray_like_pixels(200, seed=1, height=150), cfg)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 0], x[0, 1])
    np.testing.assert_array_equal(x[0, 0], x[0, 2])
    assert preprocess(make_xray_like_pixels(100), PreprocessConfig(image_size=32, channels=1)).shape == (1, 1, 32, 32)


def test_deterministic():
    cfg = PreprocessConfig(image_size=48, resize="letterbox")
    pixels = make_xray_like_pixels(300, seed=2, height=180)
    np.testing.assert_array_equal(preprocess(pixels, cfg), preprocess(pixels.copy(), cfg))


def test_normalisation_values():
    cfg = PreprocessConfig(image_size=16, mean=0.5, std=0.25)
    assert np.allclose(preprocess(np.full((64, 64), 255, np.uint8), cfg), (1.0 - 0.5) / 0.25)
    assert np.allclose(preprocess(np.zeros((64, 64), np.uint8), cfg), -2.0)


def test_letterbox_keeps_aspect_and_pads_black():
    cfg = PreprocessConfig(image_size=64, mean=0.0, std=1.0, resize="letterbox")
    wide = np.full((100, 200), 255, np.uint8)  # 2:1 -> 64 x 32 content band, centred
    x = preprocess(wide, cfg)[0, 0]
    box = letterbox_geometry(100, 200, 64)
    assert (box.top, box.left, box.height, box.width) == (16, 0, 32, 64)
    assert np.all(x[:16] == 0) and np.all(x[48:] == 0)
    assert np.allclose(x[16:48], 1.0)
    squash = preprocess(wide, PreprocessConfig(image_size=64, mean=0.0, std=1.0))[0, 0]
    assert np.allclose(squash, 1.0)
    assert content_box(100, 200, PreprocessConfig(image_size=64)).height == 64


def test_config_round_trip_and_validation():
    cfg = PreprocessConfig(image_size=128, mean=0.4, std=0.3, channels=1, resize="letterbox")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        PreprocessConfig.from_dict({**cfg.to_dict(), "flip": True})
    with pytest.raises(ValueError):
        PreprocessConfig(resize="crop")


def test_rejects_non_uint8_or_colour():
    cfg = PreprocessConfig(image_size=32)
    with pytest.raises(ValueError):
        preprocess(np.zeros((64, 64), np.float32), cfg)
    with pytest.raises(ValueError):
        preprocess(np.zeros((64, 64, 3), np.uint8), cfg)
