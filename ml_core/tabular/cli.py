"""``python -m ml_core.tabular profile | train | evaluate | predict | bench``.

Same contract as the image CLI (``ml_core/cli.py``): human-readable lines go to stderr; with
``--json`` the LAST line of stdout is one JSON object. A refused table or input ends with exit
status 2 and, with ``--json``, ``{"error": {"code": ..., "message": ...}}`` as that last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ml_core.tabular.artifacts import ModelFileError, finite, json_default, write_json

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "tabular"


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(finite(obj), sort_keys=True, default=json_default), flush=True)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fail(args: argparse.Namespace, code: str, message: str) -> None:
    _log(f"error: {message}")
    if getattr(args, "json", False):
        _emit({"error": {"code": code, "message": message}})
    raise SystemExit(2)


# --- profile --------------------------------------------------------------------------


def cmd_profile(args: argparse.Namespace) -> None:
    from ml_core.tabular.io import read_table
    from ml_core.tabular.profile import profile, save_profile_plots

    table = read_table(args.data)
    report = profile(table.frame, args.target)
    report["file"] = {"sha256": table.sha256, "bytes": table.n_bytes, "encoding": table.encoding,
                      "delimiter": table.delimiter, "notes": table.notes}  # fmt: skip
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "profile.json", report)
        report["plots"] = [str(p) for p in save_profile_plots(report, out)]
    _log(
        f"{report['rows']} rows x {report['columns']} columns, {report['missing_cells']} missing cells, "
        f"{report['duplicate_rows']} duplicate rows, suspicious zeros {report['suspicious_zeros']}"
    )
    if args.json:
        _emit(report)


# --- train ----------------------------------------------------------------------------


def train_config(args: argparse.Namespace):
    from ml_core.tabular.clean import CleanConfig
    from ml_core.tabular.select import SelectConfig
    from ml_core.tabular.train import TrainConfig

    zeros: Any = args.zero_as_missing
    if zeros not in ("auto", "none"):
        zeros = tuple(c.strip() for c in zeros.split(",") if c.strip())
    clean = CleanConfig(
        zero_as_missing=zeros,
        numeric_imputer=args.numeric_imputer,
        categorical_imputer=args.categorical_imputer,
        clip_outliers=args.clip_outliers,
        scaler=args.scaler,
        empty_columns=args.empty_columns,
    )
    select = SelectConfig(
        method=args.select, score=args.select_score, k=args.k, fraction=args.fraction, wrapper=args.wrapper
    )
    return TrainConfig(
        target=args.target,
        positive=args.positive,
        binarise_threshold=args.binarise_threshold,
        exclude=tuple(args.exclude or ()),
        clean=clean,
        select=select,
        algorithms=tuple(args.algorithms),
        grid=args.grid,
        scoring=args.scoring,
        folds=args.folds,
        test_size=args.test_size,
        seed=args.seed,
        imbalance=args.imbalance,
        decision_threshold=args.threshold,
        n_jobs=args.n_jobs,
        permutation_repeats=args.permutation_repeats,
    )


def summarise(result, model_dir: Path | None) -> dict[str, Any]:
    """The CLI's (and the bench's) answer: chosen algorithm, its test figures, every algorithm's CV/test."""
    scoring = result.config["scoring"]
    return {
        "model": str(model_dir) if model_dir else None,
        "chosen": result.chosen,
        "scoring": scoring,
        "test": dict(result.test.items()),
        "algorithms": {
            name: {
                "best_params": r["best_params"],
                "cv_mean": r["cv"][scoring]["mean"],
                "cv_std": r["cv"][scoring]["std"],
                "cv_accuracy": r["cv"]["accuracy"]["mean"],
                "cv_roc_auc": r["cv"]["roc_auc"]["mean"],
                "cv_f1_macro": r["cv"]["f1_macro"]["mean"],
                "test_accuracy": r["test"]["accuracy"],
                "test_f1_macro": r["test"]["f1_macro"],
                "test_roc_auc": r["test"]["roc_auc"],
                "seconds": r["seconds"],
            }
            for name, r in result.algorithms.items()
        },
        "imbalance": result.imbalance,
        "split": result.split,
        "selection": {
            "method": result.selection.get("method"),
            "selected": [f["feature"] for f in result.selection.get("features", []) if f["selected"]],
        },
        "permutation_importance": result.permutation_importance[:10],
        "timings": result.timings,
        "dataset_sha256": result.dataset_sha256,
    }


def cmd_train(args: argparse.Namespace) -> None:
    from ml_core.tabular.artifacts import save_model
    from ml_core.tabular.io import read_table
    from ml_core.tabular.train import train

    table = read_table(args.data)
    cfg = train_config(args)
    if args.progress:
        cfg.progress = lambda e: _log(json.dumps(e, default=json_default))
    result = train(table.frame, cfg)
    result.dataset_sha256 = table.sha256  # of the file as uploaded, as the web app records it
    out = save_model(result, args.out, name=args.name) if args.out else None
    if args.mlflow:
        from ml_core.tabular.tracking import log_tabular_run

        run_id = log_tabular_run(args.tracking_uri, result, out, experiment=args.experiment, register_as=args.register)
        _log(f"mlflow run {run_id}")
    summary = summarise(result, out)
    for name, r in summary["algorithms"].items():
        _log(
            f"{name:20s} cv {summary['scoring']} {r['cv_mean']:.4f} ± {r['cv_std']:.4f}   "
            f"test macro-F1 {r['test_f1_macro']:.4f} ROC-AUC {r['test_roc_auc']:.4f}   {r['seconds']:.1f}s"
        )
    _log(f"chosen: {result.chosen} (best mean CV {summary['scoring']}); total {result.timings['total_s']:.1f}s")
    if args.json:
        _emit(summary)


# --- evaluate / predict ------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ml_core.tabular.artifacts import load_model
    from ml_core.tabular.evaluate import binary_metrics, save_plots
    from ml_core.tabular.io import binary_target, read_table
    from ml_core.tabular.schema import validate_rows

    model = load_model(args.model)
    target = model.manifest["target"]
    table = read_table(args.data)
    features, y, _ = binary_target(
        table.frame,
        target["column"],
        positive=target.get("positive"),
        binarise_threshold=target.get("binarise_threshold"),
    )
    frame = validate_rows(model.schema, features)
    proba = model.predict_proba(frame)
    threshold = args.threshold if args.threshold is not None else model.threshold
    metrics = binary_metrics(y, proba, threshold)
    metrics["model"] = str(model.path)
    metrics["algorithm"] = model.manifest["algorithm"]
    if args.plots:
        metrics["plots"] = [
            str(p) for p in save_plots(y, proba, args.plots, threshold=threshold, title=metrics["algorithm"])
        ]
    _log(
        f"{metrics['n']} rows: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['f1_macro']:.4f}, "
        f"ROC-AUC {metrics['roc_auc'] if metrics['roc_auc'] is None else round(metrics['roc_auc'], 4)}"
    )
    if args.json:
        _emit(metrics)


def cmd_predict(args: argparse.Namespace) -> None:
    from ml_core.tabular.artifacts import load_model
    from ml_core.tabular.io import read_table

    model = load_model(args.model)
    if args.row:
        rows = json.loads(args.row)
    elif args.data:
        frame = read_table(args.data).frame
        frame = frame.drop(columns=[model.manifest["target"]["column"]], errors="ignore")
        rows = [{k: (None if v != v else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
    else:
        _fail(args, "no_rows", "give --row '{...}' or --data file.csv")
    t0 = time.perf_counter()
    predictions = model.predict(rows, top=args.top)
    ms = (time.perf_counter() - t0) * 1000
    for i, p in enumerate(predictions[:20]):
        _log(f"row {i}: {p['label']} (p={p['probability']:.3f}); top {[f['feature'] for f in p['top_features']]}")
    if args.json:
        _emit(
            {
                "model": model.manifest["name"],
                "algorithm": model.manifest["algorithm"],
                "model_sha256": model.manifest["model_sha256"],
                "predictions": predictions,
                "milliseconds": round(ms, 2),
                "notice": "preliminary, not a diagnosis: a model estimate for a clinician to weigh",
            }
        )


def cmd_bench(args: argparse.Namespace) -> None:
    from ml_core.tabular.bench import run_bench

    report = run_bench(Path(args.data_dir), grid=args.grid, out=Path(args.out) if args.out else None, log=_log)
    if args.out:
        write_json(Path(args.out) / "bench.json", report)
    if args.json:
        _emit(report)


# --- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from ml_core.tabular.evaluate import SCORINGS
    from ml_core.tabular.models import ALGORITHM_NAMES

    p = argparse.ArgumentParser(prog="python -m ml_core.tabular", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    pf = sub.add_parser("profile", help="describe a CSV: kinds, missing cells, suspicious zeros, class balance")
    pf.add_argument("--data", required=True)
    pf.add_argument("--target", default=None)
    pf.add_argument("--out", default=None, help="write profile.json and the PNG plots here")
    pf.add_argument("--json", action="store_true")
    pf.set_defaults(func=cmd_profile)

    t = sub.add_parser("train", help="clean, select, grid-search the algorithms, save the best pipeline")
    t.add_argument("--data", required=True)
    t.add_argument("--target", default="target")
    t.add_argument("--positive", default=None, help="the target value that means 1")
    t.add_argument("--binarise-threshold", type=float, default=None, help="numeric target: 1 when above this")
    t.add_argument("--exclude", nargs="+", default=None, help="columns to leave out (e.g. a site column)")
    t.add_argument("--out", default=None, help="model directory to write (model.skops, schema.json, ...)")
    t.add_argument("--name", default="tabular-model")
    t.add_argument("--algorithms", nargs="+", default=list(ALGORITHM_NAMES), choices=ALGORITHM_NAMES)
    t.add_argument("--grid", default="full", choices=("full", "quick"))
    t.add_argument("--scoring", default="roc_auc", choices=SCORINGS)
    t.add_argument("--folds", type=int, default=0, help="0: 5 when every class allows it, else 3")
    t.add_argument("--test-size", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--imbalance", default="auto", choices=("auto", "smote", "class_weight", "none"))
    t.add_argument("--threshold", type=float, default=0.5, help="positive-class probability for class 1")
    t.add_argument("--select", default="filter", choices=("filter", "wrapper", "none"))
    t.add_argument("--select-score", default="anova_f", choices=("anova_f", "mutual_info", "chi2"))
    t.add_argument("--k", type=int, default=None, help="keep k encoded features (default: --fraction of them)")
    t.add_argument("--fraction", type=float, default=0.8)
    t.add_argument("--wrapper", default="rfecv", choices=("rfecv", "sequential"))
    t.add_argument("--numeric-imputer", default="median", choices=("median", "mean", "knn"))
    t.add_argument("--categorical-imputer", default="most_frequent", choices=("most_frequent", "constant"))
    t.add_argument("--zero-as-missing", default="auto", help="auto, none, or a comma-separated list of columns")
    t.add_argument("--clip-outliers", action="store_true")
    t.add_argument("--scaler", default="standard", choices=("standard", "robust", "minmax", "none"))
    t.add_argument("--empty-columns", default="error", choices=("error", "drop"))
    t.add_argument("--n-jobs", type=int, default=1)
    t.add_argument("--permutation-repeats", type=int, default=5)
    t.add_argument("--progress", action="store_true", help="progress events (JSON) on stderr")
    t.add_argument("--mlflow", action="store_true", help="log the run to MLflow")
    t.add_argument("--tracking-uri", default=None)
    t.add_argument("--experiment", default="deepmed-tabular")
    t.add_argument("--register", default=None, help="register the model directory under this MLflow name")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a saved model on a labelled CSV")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--threshold", type=float, default=None, help="default: the model's own")
    e.add_argument("--plots", default=None, help="write confusion/ROC/PR PNGs here")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="risk predictions for a JSON row (or rows) or a CSV")
    pr.add_argument("--model", required=True)
    pr.add_argument("--row", default=None, help="a JSON object or list, e.g. '{\"age\": 63, ...}'")
    pr.add_argument("--data", default=None, help="a CSV of rows (a target column is ignored)")
    pr.add_argument("--top", type=int, default=3, help="contributing features per row")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("bench", help="the issue's targets on the three shared datasets (heart, Pima, CKD)")
    b.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    b.add_argument("--grid", default="full", choices=("full", "quick"))
    b.add_argument("--out", default=None, help="write bench.json here")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> None:
    from ml_core.tabular.io import TabularDataError
    from ml_core.tabular.schema import SchemaError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TabularDataError as exc:
        _fail(args, exc.code, exc.message)
    except SchemaError as exc:
        _fail(args, exc.code, str(exc))
    except ModelFileError as exc:
        _fail(args, "model_file", str(exc))
