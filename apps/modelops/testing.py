"""Synthetic training data for model-operations tests and demos (not a medical data set)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

CLASSES = ("COVID-19", "NORMAL", "PNEUMONIA")


def write_tiny_dataset(root: Path, per_split: dict[str, int] | None = None, size: int = 64) -> Path:
    """{train,val,test}/<CLASS>/*.png of X-ray-like pictures whose class shows as a bright band
    (learnable in a few steps, meaningless medically)."""
    from ml_core.imaging import encode_png
    from ml_core.testing import make_xray_like_pixels

    per_split = per_split or {"train": 8, "val": 4, "test": 4}
    for split, n in per_split.items():
        for k, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = zlib.crc32(f"{split}/{cls}/{i}".encode()) % 100_000
                pixels = make_xray_like_pixels(size, seed=seed).astype(np.int16)
                pixels[:, k * size // 3 : (k + 1) * size // 3] += 60
                (folder / f"{split}-{k}-{i}.png").write_bytes(encode_png(np.clip(pixels, 0, 255).astype(np.uint8)))
    return root
