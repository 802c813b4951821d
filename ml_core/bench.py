"""Benchmarks.

``run_bench``: torch eager vs ONNX Runtime fp32 vs int8, one run on the same images.
Single-image latency (p50/p95, one intra-op thread for every engine so the numbers
compare like with like and match how workers are configured), batch throughput,
the ratios, and the accuracy / macro-F1 of each ONNX format against fp32.

``bench_training``: training images/s with and without AMP.

``learning_curve``: test macro-F1 against the number of labelled training images
(nested, stratified subsets), random versus pretrained initialisation.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml_core.data import (
    Dataset,
    Sample,
    ensure_splits,
    find_provenance,
    load_all_pixels,
    load_dataset,
    sample_sources,
)
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

if TYPE_CHECKING:
    from ml_core.train import TrainConfig


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
    calib_idx = (
        stratified_subset(labels, cfg.calibration_images) if labels is not None else range(cfg.calibration_images)
    )
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
        # int8-static with the nodes the build kept fp32 (names of the same export), as served
        keep = (meta.metrics.get("int8_sensitivity") or {}).get("keep_fp32", [])
        paths = {fmt: quantize(fp32, Path(tmp) / f"{fmt}.onnx", fmt, calibration, keep) for fmt in FORMATS}
        paths["served"] = package_dir / meta.model_file
        for name, path in paths.items():
            session = ort_session(path, intra_op_threads=cfg.threads)
            entry: dict[str, Any] = single_image_latency_ms(session, one, cfg.runs)
            input_name = session.get_inputs()[0].name
            entry["batch_images_per_s"] = _throughput(
                lambda b, s=session, n=input_name: s.run(None, {n: b}), batch, cfg.batch_runs
            )
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
        "architecture": cfg.architecture,
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
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

        def step(model=model, opt=opt, loss_fn=loss_fn, xb=xb, precision=precision) -> None:
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


# --- learning curve ---------------------------------------------------------------

INITS = ("random", "pretrained")


@dataclass
class LearningCurveConfig:
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # of the train split
    inits: tuple[str, ...] = INITS
    architecture: str = "tf_efficientnet_lite0"
    pretrained: str = "efficientnet-lite0"  # what the 'pretrained' init starts from (see TrainConfig.pretrained)
    image_size: int = 160
    epochs: int = 4  # at least; small subsets get more epochs to reach ``min_steps``
    # Optimiser steps per run at least: with 10 % of the images an epoch has a tenth of the
    # steps, and a run that barely moves from its initialisation measures the budget, not the labels.
    min_steps: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0  # draws the subsets and seeds every training run
    threads: int = 1
    max_test_images: int | None = None  # stratified cap on the scored test images (time)


def nested_train_subsets(dataset: Dataset, fractions: Sequence[float], seed: int = 0) -> dict[float, list[Sample]]:
    """Seeded, stratified, nested subsets of ``dataset``'s train split, one per fraction.

    Strata are (source, class) cells when the data has a provenance.csv, else classes, so a
    subset keeps the source mix too (a source shortcut must not grow or shrink with the
    fraction). Each cell is shuffled once and every fraction takes a prefix of
    ``max(1, round(f * n_cell))`` images: the 10 % subset lies inside the 25 % one, and so on.
    """
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {list(fractions)}")
    # Sorted by content first: the same files and seed give the same subsets whatever the listing order.
    train = sorted(dataset.split("train"), key=lambda s: (s.sha256, str(s.path)))
    if not train:
        raise ValueError("the dataset has no train split")
    sources = sample_sources(dataset.root, train) or [""] * len(train)
    cells: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for source, sample in zip(sources, train):
        cells[(source, sample.label)].append(sample)
    rng = np.random.default_rng(seed)
    ranked = [[members[i] for i in rng.permutation(len(members))] for _, members in sorted(cells.items())]
    return {
        f: [s for members in ranked for s in members[: max(1, round(f * len(members)))]] for f in sorted(set(fractions))
    }


def _run_config(base: TrainConfig, cfg: LearningCurveConfig, init: str, epochs: int) -> TrainConfig:
    return replace(
        base,
        data="",
        extra_data=None,
        architecture=cfg.architecture,
        pretrained=cfg.pretrained if init == "pretrained" else None,
        image_size=cfg.image_size,
        epochs=epochs,
        patience=epochs + 1,  # no early stopping: both inits get exactly the same steps
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        num_threads=cfg.threads,
        resume=False,  # a leftover last.pt from another configuration must not be continued
        max_steps_per_epoch=None,
        time_budget_s=None,
    )


def learning_curve(
    dataset: Dataset | str | Path,
    cfg: LearningCurveConfig | None = None,
    out_dir: str | Path = "var/learning-curve",
    base_train_config: TrainConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every (fraction, init) pair and score its best-on-validation checkpoint on the test split.

    The subsets are ``nested_train_subsets``; val and test are the dataset's own, unchanged.
    ``base_train_config`` supplies every training setting the config does not (augmentation,
    weight decay, label smoothing, ...; default: the quick tier). Writes ``learning_curve.json``
    (also after every run, so an interrupted run keeps its rows) and ``learning_curve.png``.
    """
    from ml_core.evaluate import evaluate_logits
    from ml_core.train import TrainConfig, load_checkpoint_model, predict_logits, train

    cfg = cfg or LearningCurveConfig()
    unknown = sorted(set(cfg.inits) - set(INITS))
    if unknown or not cfg.inits:
        raise ValueError(f"inits must be drawn from {INITS}, got {list(cfg.inits)}")
    ds = ensure_splits(dataset if isinstance(dataset, Dataset) else load_dataset(dataset))
    base = (base_train_config or TrainConfig(tier="quick")).resolved()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    subsets = nested_train_subsets(ds, cfg.fractions, cfg.seed)
    held_out = [s for s in ds.samples if s.split in ("val", "test")]
    test = ds.split("test")
    if not test:
        raise ValueError("the learning curve is scored on a test split; the dataset has none")
    index = {c: i for i, c in enumerate(ds.classes)}
    test_labels = np.array([index[s.label] for s in test])
    if cfg.max_test_images:
        keep = stratified_subset(test_labels, cfg.max_test_images, seed=cfg.seed)
        test, test_labels = [test[i] for i in keep], test_labels[keep]
    test_pixels = load_all_pixels(test)  # decoded once, scored by every run

    result: dict[str, Any] = {
        "config": asdict(cfg),
        "training": {
            k: getattr(base, k)
            for k in ("augment", "weight_decay", "label_smoothing", "warmup_epochs", "imbalance", "drop_rate", "hflip")
        },
        "rule": (
            "steps_per_epoch = n_train_images // batch_size (at least 1); "
            "epochs = max(config.epochs, ceil(min_steps / steps_per_epoch)); no early stopping; "
            "the checkpoint with the best validation macro-F1 is scored on the test split; "
            "every init trains on the same subset for the same epochs"
        ),
        "data": {
            "root": str(ds.root),
            "classes": ds.classes,
            "n_train": len(ds.split("train")),
            "n_val": len(ds.split("val")),
            "n_test_scored": len(test),
            "strata": "source x class" if find_provenance(ds.root) else "class",
        },
        "rows": [],
        "complete": False,
    }
    json_path, png_path = out_dir / "learning_curve.json", out_dir / "learning_curve.png"
    for fraction, subset in subsets.items():
        steps_per_epoch = max(1, len(subset) // cfg.batch_size)  # train()'s rule on one process
        epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
        for init in cfg.inits:
            run_dir = out_dir / "runs" / f"{fraction:g}-{init}"
            run = train(
                _run_config(base, cfg, init, epochs),
                dataset=Dataset(root=ds.root, classes=ds.classes, samples=[*subset, *held_out]),
                out_dir=run_dir,
            )
            (run_dir / "last.pt").unlink(missing_ok=True)  # resume state (optimiser too); best.pt is what counts
            model, _ = load_checkpoint_model(run.best_checkpoint)
            logits = predict_logits(model, test_pixels, run.preprocess, batch_size=64)
            metrics = evaluate_logits(logits, test_labels, ds.classes)
            row = {
                "fraction": fraction,
                "init": init,
                "initialisation": run.initialisation.to_dict(),
                "n_train_images": len(subset),
                "class_counts": {c: sum(s.label == c for s in subset) for c in ds.classes},
                "steps_per_epoch": steps_per_epoch,
                "epochs": epochs,
                "epochs_run": len(run.history),
                "best_epoch": run.best_epoch,
                "best_val_macro_f1": run.best_val_macro_f1,
                "test_macro_f1": metrics["macro_f1"],
                "test_accuracy": metrics["accuracy"],
                "test_roc_auc_macro": metrics["roc_auc_macro"],
                "seconds": round(run.seconds, 1),
                "checkpoint": str(run.best_checkpoint),
            }
            result["rows"].append(row)
            if log is not None:
                log(
                    f"fraction {fraction:g} ({len(subset)} images) {init}: test macro-F1 {row['test_macro_f1']:.4f} "
                    f"(val {row['best_val_macro_f1']:.4f}, {epochs} epochs, {row['seconds']:.0f}s)"
                )
            json_path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    result["gains"] = _pretrained_gains(result["rows"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["complete"] = True
    result["plot"] = str(plot_learning_curve(result, png_path))
    result["json"] = str(json_path)
    json_path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


def _pretrained_gains(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fraction: pretrained minus random on the test split (when both were run)."""
    by_key = {(r["fraction"], r["init"]): r for r in rows}
    gains = []
    for fraction in sorted({r["fraction"] for r in rows}):
        pre, rnd = by_key.get((fraction, "pretrained")), by_key.get((fraction, "random"))
        if pre and rnd:
            gains.append(
                {
                    "fraction": fraction,
                    "n_train_images": pre["n_train_images"],
                    "macro_f1_gain": pre["test_macro_f1"] - rnd["test_macro_f1"],
                    "accuracy_gain": pre["test_accuracy"] - rnd["test_accuracy"],
                }
            )
    return gains


def plot_learning_curve(result: dict[str, Any], path: str | Path) -> Path:
    """Test macro-F1 against the number of training images (log x), one line per init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    cfg = result["config"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for init in cfg["inits"]:
        rows = sorted((r for r in result["rows"] if r["init"] == init), key=lambda r: r["n_train_images"])
        ax.plot([r["n_train_images"] for r in rows], [r["test_macro_f1"] for r in rows], marker="o", label=init)
    ns = sorted({r["n_train_images"] for r in result["rows"]})
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test macro-F1")
    ax.set_title(f"Learning curve: {cfg['architecture']} at {cfg['image_size']} px")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_learning_curve_table(result: dict[str, Any]) -> str:
    """The rows as a fixed-width table, with the pretrained gain per fraction when both inits ran."""
    header = (
        f"{'fraction':>8} {'images':>6} {'init':<10} {'epochs':>6} {'val_f1':>7} {'test_f1':>7} "
        f"{'test_acc':>8} {'test_auc':>8} {'seconds':>7}"
    )
    lines = [header]
    for r in result["rows"]:
        auc = "-" if r["test_roc_auc_macro"] is None else f"{r['test_roc_auc_macro']:.4f}"
        lines.append(
            f"{r['fraction']:>8g} {r['n_train_images']:>6d} {r['init']:<10} {r['epochs']:>6d} "
            f"{r['best_val_macro_f1']:>7.4f} {r['test_macro_f1']:>7.4f} {r['test_accuracy']:>8.4f} {auc:>8} "
            f"{r['seconds']:>7.0f}"
        )
    for g in result.get("gains", []):
        lines.append(
            f"pretrained - random at {g['fraction']:g} ({g['n_train_images']} images): "
            f"macro-F1 {g['macro_f1_gain']:+.4f}, accuracy {g['accuracy_gain']:+.4f}"
        )
    return "\n".join(lines)
