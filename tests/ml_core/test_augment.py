"""Augmentation levels and the no-horizontal-flip default."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.augment import LEVELS, AugmentConfig, augment, materialise
from ml_core.testing import make_tiny_imagefolder, make_xray_like_pixels


@pytest.fixture()
def asymmetric():
    img = make_xray_like_pixels(96, seed=3)
    img[10:30, 5:25] = 255  # a marker on the image's left only
    return img


def _mean_change(img, level, draws=12):
    rng = np.random.default_rng(0)
    return np.mean(
        [np.abs(augment(img, AugmentConfig(level=level), rng).astype(float) - img).mean() for _ in range(draws)]
    )


def test_levels_are_ordered_by_strength(asymmetric):
    changes = [_mean_change(asymmetric, level) for level in LEVELS]
    assert changes[0] == 0.0  # 'none' is the identity
    assert changes[1] < changes[2] < changes[3]


def test_output_keeps_shape_dtype_and_is_seeded(asymmetric):
    a = augment(asymmetric, AugmentConfig(level="heavy"), np.random.default_rng(5))
    b = augment(asymmetric, AugmentConfig(level="heavy"), np.random.default_rng(5))
    assert a.shape == asymmetric.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_horizontal_flip_is_off_unless_asked(asymmetric):
    assert AugmentConfig().hflip is False
    rng = np.random.default_rng(0)
    flipped = asymmetric[:, ::-1]
    never = [augment(asymmetric, AugmentConfig(level="none"), rng) for _ in range(20)]
    assert all(np.array_equal(o, asymmetric) for o in never)
    asked = [augment(asymmetric, AugmentConfig(level="none", hflip=True), rng) for _ in range(20)]
    assert any(np.array_equal(o, flipped) for o in asked)
    # with geometric jitter (no hflip) every output still looks like the original, not its mirror
    corr = lambda a, b: np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]  # noqa: E731
    for _ in range(10):
        out = augment(asymmetric, AugmentConfig(level="light"), rng)
        assert corr(out, asymmetric) > corr(out, flipped)


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError):
        AugmentConfig(level="extreme")


def test_materialise_writes_copies_with_progress(tmp_path):
    src = make_tiny_imagefolder(tmp_path / "src", per_split={"train": 2}, size=64)
    seen = []
    report = materialise(
        src / "train",
        tmp_path / "out",
        copies=3,
        cfg=AugmentConfig(level="light"),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert report["written"] == 3 * 6 and len(list((tmp_path / "out").rglob("*.png"))) == 18
    assert seen[-1] == (6, 6)
