"""Fit the autoencoder OOD gate (torch; serving only needs the exported ONNX file).

A ~30 k-parameter convolutional autoencoder learns to reconstruct 64 x 64 chest X-rays;
images it reconstructs badly are flagged. The threshold is a percentile of the
reconstruction errors of held-out (validation) X-rays.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml_core.ood import AutoencoderOOD, ae_input

AE_IMAGE_SIZE = 64


class ConvAutoencoder(nn.Module):
    def __init__(self, width: int = 16, bottleneck: int = 32) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, bottleneck, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, 2 * w, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def fit_autoencoder(
    train_images: Sequence[np.ndarray],
    calibration_images: Sequence[np.ndarray],
    out_path: str | Path,
    *,
    size: int = AE_IMAGE_SIZE,
    epochs: int = 15,
    batch_size: int = 32,
    lr: float = 2e-3,
    percentile: float = 99.0,
    seed: int = 0,
) -> AutoencoderOOD:
    """Train on ``train_images``, export ONNX to ``out_path``, threshold on ``calibration_images``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(ae_input(train_images, size))
    model = ConvAutoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for _ in range(epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch_size)):
            batch = x[torch.from_numpy(idx)]
            loss = nn.functional.mse_loss(model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model,
            (x[:2],),
            str(out_path),
            input_names=["input"],
            output_names=["reconstruction"],
            dynamic_axes={"input": {0: "batch"}, "reconstruction": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    gate = AutoencoderOOD(onnx_path=out_path, threshold=np.inf, percentile=percentile, image_size=size, n_fit=len(x))
    gate.threshold = float(np.percentile(gate.score_images(calibration_images), percentile))
    return gate
