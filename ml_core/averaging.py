"""Uniform weight averaging ("model soup", Wortsman et al., ICML 2022) of models fine-tuned from
one starting point: a champion package and the epochs of a warm-started run from it, for example.

The average is written as a training checkpoint, so ``python -m ml_core export`` packages it like
any trained model (calibration, ONNX, OOD gate and metrics are fitted on the averaged weights).
Averaging is only meaningful for models that share a basin; choose the members on validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ml_core.package import file_sha256, load_package_meta
from ml_core.pretrained import adapt_input_channels


class AveragingError(ValueError):
    """The members cannot be averaged (different architecture, classes or tensors)."""


def _member(source: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any] | None]:
    """(state dict, provenance record, checkpoint dict or None for a package)."""
    if source.is_dir():
        meta = load_package_meta(source)
        if not meta.torch_weights:
            raise AveragingError(f"package {source} carries no torch weights")
        weights = source / meta.torch_weights
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        record = {
            "kind": "package",
            "name": f"{meta.name} v{meta.version}",
            "sha256": file_sha256(weights),
            "architecture": meta.architecture,
            "classes": list(meta.classes),
            "initialisation": meta.extra.get("initialisation"),
        }
        return state, record, None
    ckpt = torch.load(str(source), map_location="cpu", weights_only=False)
    record = {
        "kind": "checkpoint",
        "name": source.name,
        "sha256": file_sha256(source),
        "architecture": ckpt["model_config"]["architecture"],
        "classes": list(ckpt["classes"]),
        "epoch": ckpt.get("epoch"),
        "initialisation": ckpt.get("initialisation"),
    }
    return ckpt["model"], record, ckpt


def average_checkpoints(members: Sequence[str | Path], out: str | Path) -> Path:
    """Write the uniform average of ``members`` (checkpoints and/or package directories; at
    least one checkpoint, whose configuration the average keeps) to ``out``.

    Floating tensors (weights and BatchNorm running statistics) are averaged in float32; integer
    buffers (BatchNorm's batch counter) are taken from the first member. The checkpoint records
    every member (``averaged_from``, with sha256) and, as its initialisation, the first member's:
    list the package the run was warm-started from first, so the ImageNet origin carries over.
    """
    if len(members) < 2:
        raise AveragingError("averaging needs at least two members")
    loaded = [_member(Path(m)) for m in members]
    template = next((ckpt for _, _, ckpt in loaded if ckpt is not None), None)
    if template is None:
        raise AveragingError("at least one member must be a training checkpoint (it supplies the configuration)")
    # A package whose stem was folded to one grey channel joins in the checkpoint's stem (exact).
    loaded = [(adapt_input_channels(state, template["model"]), record, ckpt) for state, record, ckpt in loaded]
    first_state, first_record, _ = loaded[0]
    for state, record, _ in loaded[1:]:
        if (record["architecture"], record["classes"]) != (first_record["architecture"], first_record["classes"]):
            raise AveragingError(f"{record['name']} is not the same architecture and classes as {first_record['name']}")
        if set(state) != set(first_state) or any(state[k].shape != first_state[k].shape for k in state):
            raise AveragingError(f"{record['name']} does not have the same tensors as {first_record['name']}")
    average = {}
    for key, tensor in first_state.items():
        if tensor.is_floating_point():
            average[key] = torch.stack([state[key].float() for state, _, _ in loaded]).mean(0)
        else:
            average[key] = tensor.clone()
    records = [{k: v for k, v in record.items() if k != "classes"} for _, record, _ in loaded]
    checkpoint = {
        **{k: v for k, v in template.items() if k not in ("model", "optimizer", "metrics", "epoch")},
        "model": average,
        "epoch": None,
        "metrics": {},
        "initialisation": records[0]["initialisation"] or template.get("initialisation"),
        "averaged_from": records,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, str(out))
    return out
