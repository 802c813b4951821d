"""The single preprocessing definition shared by training and serving.

Training, evaluation, export checks and the ONNX predictor all call ``preprocess``
with the ``PreprocessConfig`` stored in the model package, so a trained model and
its served copy cannot see differently prepared pixels. Augmentation (training
only) acts on the uint8 pixels *before* this function.

numpy + Pillow only: the serving path imports this module and must stay torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from PIL import Image

ResizeMode = Literal["squash", "letterbox"]


@dataclass
class PreprocessConfig:
    image_size: int = 224
    # ImageNet RGB mean/std averaged over channels: right scale for timm backbones
    # and harmless when training from scratch.
    mean: float = 0.449
    std: float = 0.226
    channels: int = 3  # timm models take 3 channels; the grey plane is replicated
    resize: ResizeMode = "squash"  # 'squash' (ignore aspect) or 'letterbox' (keep aspect, pad black)

    def __post_init__(self) -> None:
        if self.resize not in ("squash", "letterbox"):
            raise ValueError(f"resize must be 'squash' or 'letterbox', got {self.resize!r}")
        if self.image_size < 8 or self.channels < 1 or self.std <= 0:
            raise ValueError(f"invalid preprocessing config: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            # Refuse silently dropping a setting a newer trainer relied on.
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where the resized image sits inside the square model input."""

    top: int
    left: int
    height: int
    width: int


def letterbox_geometry(height: int, width: int, size: int) -> LetterboxGeometry:
    scale = size / max(height, width)
    new_h = max(1, min(size, round(height * scale)))
    new_w = max(1, min(size, round(width * scale)))
    return LetterboxGeometry(top=(size - new_h) // 2, left=(size - new_w) // 2, height=new_h, width=new_w)


def content_box(height: int, width: int, cfg: PreprocessConfig) -> LetterboxGeometry:
    """Region of the model input that holds image content (all of it for 'squash')."""
    if cfg.resize == "letterbox":
        return letterbox_geometry(height, width, cfg.image_size)
    return LetterboxGeometry(top=0, left=0, height=cfg.image_size, width=cfg.image_size)


def preprocess(pixels: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 HxW greyscale -> float32 array of shape 1 x C x S x S, normalised."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"preprocess expects 2-D uint8 greyscale, got {pixels.dtype} {pixels.shape}")
    size = cfg.image_size
    img = Image.fromarray(pixels)
    if cfg.resize == "squash":
        resized = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    else:
        box = letterbox_geometry(*pixels.shape, size)
        canvas = np.zeros((size, size), dtype=np.uint8)
        inner = np.asarray(img.resize((box.width, box.height), Image.Resampling.BILINEAR))
        canvas[box.top : box.top + box.height, box.left : box.left + box.width] = inner
        resized = canvas
    x = (resized.astype(np.float32) / np.float32(255.0) - np.float32(cfg.mean)) / np.float32(cfg.std)
    x = np.broadcast_to(x, (cfg.channels, size, size))
    return np.ascontiguousarray(x[None], dtype=np.float32)


def preprocess_batch(images, cfg: PreprocessConfig) -> np.ndarray:
    """Several uint8 greyscale images -> one N x C x S x S float32 batch (same ``preprocess``)."""
    return np.concatenate([preprocess(p, cfg) for p in images])
