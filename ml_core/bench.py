"""Benchmark: torch eager vs ONNX Runtime fp32 vs int8, one run on the same images.

Single-image latency (p50/p95, one intra-op thread for every engine so the numbers
compare like with like and match how workers are configured), batch throughput,
the ratios, and the accuracy / macro-F1 of each ONNX format against fp32.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ml_core.pipeline import (
    latency_ms,
    load_package_torch_model,
    onnx_outputs,
    single_image_latency_ms,
    stratified_subset,
)
from ml_core.preprocessing import preprocess, preprocess_batch
from ml_core.quantize import FORMATS, quantize
from ml_core.serve import ort_session


@dataclass
class BenchConfig:
    runs: int = 50  # timed single-image calls per engine
    batch_size: int = 16
    batch_runs: int = 5
    threads: int = 1
    eval_images: int = 150  # accuracy comparison (labelled data only)
    calibration_images: int = 64


def _torch_latency(model, x: np.ndarray, runs: int) -> dict[str, float]:
    import torch

    xt = torch.from_numpy(x)
    with torch.inference_mode():
        return latency_ms(lambda: model(xt), runs)


def _throughput(fn, batch: np.ndarray, runs: int) -> float:
    fn(batch)
    t = time.perf_counter()
    for _ in range(runs):
        fn(batch)
    return runs * len(batch) / (time.perf_counter() - t)


def run_bench(
    package_dir: str | Path,
    images: Sequence[np.ndarray],
    labels: np.ndarray | None = None,
    cfg: BenchConfig | None = None,
) -> dict[str, Any]:
    """Bench the package's model in every format on ``images`` (uint8 greyscale)."""
    import torch
    from sklearn.metrics import f1_score

    from ml_core.export import export_onnx
    from ml_core.package import load_package_meta

    cfg = cfg or BenchConfig()
    torch.set_num_threads(cfg.threads)
    package_dir = Path(package_dir)
    meta = load_package_meta(package_dir)
    pre = meta.preprocess
    model, _ = load_package_torch_model(package_dir)
    one = preprocess(images[0], pre)
    batch = preprocess_batch([images[i % len(images)] for i in range(cfg.batch_size)], pre)
    calib_idx = stratified_subset(labels, cfg.calibration_images) if labels is not None else range(cfg.calibration_images)
    calibration = [preprocess(images[i % len(images)], pre) for i in calib_idx]

    out: dict[str, Any] = {"package": meta.name, "version": meta.version, "architecture": meta.architecture}
    out.update(image_size=pre.image_size, threads=cfg.threads, served_format=meta.format, n_images=len(images))
    torch_lat = _torch_latency(model, one, cfg.runs)
    with torch.inference_mode():
        torch_tput = _throughput(lambda b: model(torch.from_numpy(b)), batch, cfg.batch_runs)
    engines: dict[str, dict[str, Any]] = {"torch": {**torch_lat, "batch_images_per_s": torch_tput}}

    eval_idx = stratified_subset(labels, cfg.eval_images) if labels is not None else None
    with tempfile.TemporaryDirectory(prefix="deepmed-bench-") as tmp:
        fp32 = export_onnx(model, pre, Path(tmp) / "fp32.onnx", sample=batch[:2])
        paths = {fmt: quantize(fp32, Path(tmp) / f"{fmt}.onnx", fmt, calibration) for fmt in FORMATS}
        paths["served"] = package_dir / meta.model_file
        for name, path in paths.items():
            session = ort_session(path, intra_op_threads=cfg.threads)
            entry: dict[str, Any] = single_image_latency_ms(session, one, cfg.runs)
            input_name = session.get_inputs()[0].name
            entry["batch_images_per_s"] = _throughput(lambda b: session.run(None, {input_name: b}), batch, cfg.batch_runs)
            entry["speedup_vs_torch"] = torch_lat["p50_ms"] / entry["p50_ms"]
            if eval_idx is not None:
                logits, _ = onnx_outputs(session, [images[i] for i in eval_idx], pre)
                pred = logits.argmax(1)
                entry["accuracy"] = float((pred == labels[eval_idx]).mean())
                entry["macro_f1"] = float(f1_score(labels[eval_idx], pred, average="macro"))
            engines[name] = entry
    for fmt in ("int8-dynamic", "int8-static"):
        e = engines[fmt]
        e["speedup_vs_fp32"] = engines["fp32"]["p50_ms"] / e["p50_ms"]
        if "macro_f1" in e:
            e["macro_f1_delta_vs_fp32"] = e["macro_f1"] - engines["fp32"]["macro_f1"]
            e["accuracy_delta_vs_fp32"] = e["accuracy"] - engines["fp32"]["accuracy"]
    served = engines["served"]
    out["engines"] = engines
    out.update(
        torch_p50_ms=torch_lat["p50_ms"],
        torch_p95_ms=torch_lat["p95_ms"],
        served_p50_ms=served["p50_ms"],
        served_p95_ms=served["p95_ms"],
        speedup_served_vs_torch=torch_lat["p50_ms"] / served["p50_ms"],
        batch_images_per_s=served["batch_images_per_s"],
        torch_batch_images_per_s=torch_tput,
        eval_images=0 if eval_idx is None else len(eval_idx),
    )
    if "macro_f1" in served:
        out["served_macro_f1_delta_vs_fp32"] = served["macro_f1"] - engines["fp32"]["macro_f1"]
    return out


@dataclass
class TrainBenchConfig:
    architecture: str = "resnet18"
    image_size: int = 224
    batch_size: int = 64
    steps: int = 30  # timed optimiser steps, after ``warmup`` untimed ones
    warmup: int = 5
    device: str = "auto"  # auto | cpu | cuda
    channels_last: bool = True  # CUDA only, as in training


def bench_training(cfg: TrainBenchConfig | None = None) -> dict[str, Any]:
    """Training images/s of one architecture with and without AMP (bf16 on CUDA).

    Times ``train``'s own ``training_step`` (forward, backward, AdamW) on device-resident batches, i.e.
    what the accelerator sustains; the input pipeline is timed separately by ``train``
    (``train_images_per_s`` in its history). Without CUDA only the fp32 figure is given.
    """
    import torch
    from torch import nn

    from ml_core.models import ModelConfig, build_model
    from ml_core.train import MixedPrecision, training_step

    cfg = cfg or TrainBenchConfig()
    kind = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(kind)
    out: dict[str, Any] = {
        "architecture": cfg.architecture, "image_size": cfg.image_size, "batch_size": cfg.batch_size,
        "device": torch.cuda.get_device_name(device) if kind == "cuda" else "cpu",
    }
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, generator=gen).to(device)
    y = torch.randint(0, 3, (cfg.batch_size,), generator=gen).to(device)
    for amp in (False, True) if kind == "cuda" else (False,):
        torch.manual_seed(0)
        model = build_model(ModelConfig(architecture=cfg.architecture, num_classes=3)).to(device).train()
        xb = x
        if kind == "cuda" and cfg.channels_last:
            model, xb = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        precision = MixedPrecision.for_device(device, enabled=amp)

        def step() -> None:
            training_step(model, opt, loss_fn, xb, y, precision)

        for _ in range(cfg.warmup):
            step()
        if kind == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(cfg.steps):
            step()
        if kind == "cuda":
            torch.cuda.synchronize()
        images_per_s = cfg.steps * cfg.batch_size / (time.perf_counter() - t)
        out["amp_images_per_s" if amp else "fp32_images_per_s"] = images_per_s
    if "amp_images_per_s" in out:
        out["amp_speedup"] = out["amp_images_per_s"] / out["fp32_images_per_s"]
    return out
