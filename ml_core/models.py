"""Model factory (torch + timm). Imported by training/export code only, never by serving.

Every model built here has the shape the export and CAM code rely on:
``forward_features(x) -> N x C x h x w`` (a spatial map), ``forward_head(f)`` =
global average pool + one linear layer, and ``get_classifier()`` returning that
``nn.Linear``. That makes a class activation map exact: logit_k = w_k . mean(F) + b_k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

TINY_ARCHITECTURE = "cxr_tiny"

# CNNs whose timm head is GAP + linear (CAM-compatible). ViTs need a token-to-grid
# reshape for CAM and are not served with heat-maps in phase 1.
CAM_ARCHITECTURES = ("efficientnet_b0", "resnet18", "resnet10t", "mobilenetv3_small_050", TINY_ARCHITECTURE)


@dataclass
class ModelConfig:
    architecture: str = "efficientnet_b0"
    num_classes: int = 3
    pretrained: bool = False  # no hub access here: True needs pretrained_path
    pretrained_path: str | None = None  # local timm weights file (.safetensors/.pth)
    in_chans: int = 3
    drop_rate: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return cls(**data)


class CxrTiny(nn.Module):
    """A ~25 k-parameter CNN (stride 8) for tests and CPU smoke runs; timm-like API."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.0, width: int = 16) -> None:
        super().__init__()
        chans = [in_chans, width, width * 2, width * 4]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.num_features = chans[-1]
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(cfg: ModelConfig) -> nn.Module:
    """Create the network described by cfg (random init unless local weights are given)."""
    if cfg.architecture == TINY_ARCHITECTURE:
        if cfg.pretrained:
            raise ValueError(f"{TINY_ARCHITECTURE} has no pretrained weights")
        return CxrTiny(cfg.num_classes, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate)

    import timm  # slow import (pulls torchvision); only when a timm model is asked for

    kwargs: dict[str, Any] = dict(num_classes=cfg.num_classes, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate)
    if cfg.pretrained:
        if not cfg.pretrained_path:
            # timm would try the Hugging Face hub, which is unreachable here.
            raise ValueError("pretrained=True needs pretrained_path (a local weights file); no hub access")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(cfg.pretrained_path))
    return timm.create_model(cfg.architecture, pretrained=cfg.pretrained, **kwargs)


def classifier_weights(model: nn.Module) -> np.ndarray:
    """The K x C weight matrix of the final linear layer (used to build CAMs)."""
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise TypeError(f"CAM needs a linear classifier, got {type(head).__name__}")
    return head.weight.detach().cpu().numpy().astype(np.float32)


class LogitsAndFeatures(nn.Module):
    """Wraps a model so one forward returns (logits, last spatial feature map)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(x)
        if features.ndim != 4:
            raise TypeError(f"expected N x C x h x w features, got shape {tuple(features.shape)}")
        return self.model.forward_head(features), features
