"""Training-time augmentation on uint8 greyscale pixels (before ``preprocess``).

Levels none / light / medium / heavy scale the strength of: random resized crop,
rotation, scale/translate, brightness/contrast/gamma, blur and noise. Only
anatomically plausible transforms are on by default: a horizontal flip puts the
heart on the wrong side (dextrocardia look-alike), so ``hflip`` is off unless asked.

numpy + Pillow only; one RNG passed in, so runs are reproducible from a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter

Level = Literal["none", "light", "medium", "heavy"]
LEVELS: tuple[str, ...] = ("none", "light", "medium", "heavy")


@dataclass(frozen=True)
class AugmentParams:
    crop_scale: tuple[float, float]  # random resized crop: area fraction kept
    rotate_deg: float
    scale: float  # +/- zoom fraction
    translate: float  # +/- fraction of the side
    brightness: float  # +/- additive fraction of full range
    contrast: float  # +/- multiplicative fraction
    gamma: float  # +/- log-gamma range
    blur_p: float
    blur_sigma: float
    noise_p: float
    noise_std: float  # in grey levels


_PARAMS: dict[str, AugmentParams] = {
    "light": AugmentParams((0.9, 1.0), 5, 0.05, 0.03, 0.05, 0.05, 0.1, 0.0, 0.0, 0.0, 0.0),
    "medium": AugmentParams((0.8, 1.0), 10, 0.10, 0.06, 0.10, 0.15, 0.2, 0.2, 1.0, 0.2, 4.0),
    "heavy": AugmentParams((0.65, 1.0), 15, 0.15, 0.10, 0.15, 0.25, 0.35, 0.3, 1.5, 0.3, 8.0),
}


@dataclass
class AugmentConfig:
    level: Level = "light"
    hflip: bool = False  # off by default: flipping moves the heart to the right

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"augmentation level must be one of {LEVELS}, got {self.level!r}")

    @property
    def params(self) -> AugmentParams | None:
        return _PARAMS.get(self.level)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def augment(pixels: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation of a uint8 HxW image; same shape and dtype out."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"augment expects 2-D uint8 greyscale, got {pixels.dtype} {pixels.shape}")
    p = cfg.params
    out = pixels
    if p is not None:
        out = _geometric(out, p, rng)
        out = _intensity(out, p, rng)
    if cfg.hflip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _geometric(pixels: np.ndarray, p: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    """Random resized crop + rotation + zoom + shift as ONE affine resample (one blur, not four)."""
    h, w = pixels.shape
    area = rng.uniform(*p.crop_scale)
    zoom = 1.0 / math.sqrt(area) * (1.0 + rng.uniform(-p.scale, p.scale))
    angle = math.radians(rng.uniform(-p.rotate_deg, p.rotate_deg))
    tx, ty = rng.uniform(-p.translate, p.translate, size=2) * (w, h)
    # Inverse map (output -> input) about the centre, as PIL's AFFINE expects.
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    cx, cy = w / 2.0, h / 2.0
    a, b, d, e = cos, sin, -sin, cos
    c = cx - a * (cx + tx) - b * (cy + ty)
    f = cy - d * (cx + tx) - e * (cy + ty)
    img = Image.fromarray(pixels).transform(
        (w, h), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR, fillcolor=0
    )
    return np.asarray(img)


def _intensity(pixels: np.ndarray, p: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    # Brightness/contrast/gamma folded into one 256-entry lookup table.
    levels = np.arange(256, dtype=np.float32) / 255.0
    gamma = math.exp(rng.uniform(-p.gamma, p.gamma))
    lut = levels**gamma
    lut = (lut - 0.5) * (1.0 + rng.uniform(-p.contrast, p.contrast)) + 0.5 + rng.uniform(-p.brightness, p.brightness)
    out = np.clip(lut * 255.0 + 0.5, 0, 255).astype(np.uint8)[pixels]
    if p.blur_p and rng.random() < p.blur_p:
        sigma = rng.uniform(0.3, p.blur_sigma)
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(sigma)))
    if p.noise_p and rng.random() < p.noise_p:
        noise = rng.normal(0.0, rng.uniform(0.5, 1.0) * p.noise_std, size=out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def materialise(
    src: str | Path,
    dst: str | Path,
    *,
    copies: int,
    cfg: AugmentConfig,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``copies`` augmented PNGs per image of an ImageFolder tree ``src`` into ``dst``
    (same class sub-folders); ``progress(done, total)`` after each source image."""
    from ml_core.data import load_pixels, read_image_folder
    from ml_core.imaging import encode_png

    if copies < 1:
        raise ValueError("copies must be >= 1")
    samples = read_image_folder(src)
    dst = Path(dst)
    rng = np.random.default_rng(seed)
    written = 0
    for i, s in enumerate(samples):
        pixels = load_pixels(s.path)
        folder = dst / (s.split or "") / s.label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            (folder / f"{s.path.stem}_aug{k:03d}.png").write_bytes(encode_png(augment(pixels, cfg, rng)))
            written += 1
        if progress is not None:
            progress(i + 1, len(samples))
    return {"source_images": len(samples), "written": written, "level": cfg.level, "hflip": cfg.hflip, "out": str(dst)}
