"""Training: ``train(frame, TrainConfig) -> TabularResult``.

One imbalanced-learn ``Pipeline`` per algorithm: ``clean`` (rules) -> ``encode`` (impute,
one-hot, scale) -> ``select`` (filter or wrapper) -> ``resample`` (SMOTE or nothing) ->
``model``. ``GridSearchCV`` with stratified folds clones and refits the whole pipeline on each
training fold, so no statistic of a validation fold (or of the held-out test split, which is cut
off first) reaches imputation, scaling, selection or oversampling; imbalanced-learn applies the
sampler in ``fit`` only, never when predicting. The algorithm with the best mean CV score is
chosen (never the test score); every algorithm's test figures are reported beside it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from ml_core.tabular.clean import CleanConfig, TabularCleaner, build_encoder
from ml_core.tabular.evaluate import SCORINGS, binary_metrics, fold_scores, permutation_table
from ml_core.tabular.io import DEFAULT_MAX_COLUMNS, TabularDataError, binary_target
from ml_core.tabular.models import ALGORITHM_NAMES, ALGORITHMS, GridSize, grid, grid_points
from ml_core.tabular.schema import build_schema
from ml_core.tabular.select import SelectConfig, build_selector, selection_report

log = logging.getLogger("ml_core.tabular")
Imbalance = Literal["auto", "smote", "class_weight", "none"]
ProgressFn = Callable[[dict[str, Any]], None]
MIN_ROWS = 20


@dataclass
class TrainConfig:
    target: str = "target"
    positive: str | None = None  # the target value that means 1 (default: 1, or the second sorted value)
    binarise_threshold: float | None = None  # numeric target -> target > threshold (heart: num > 0)
    exclude: tuple[str, ...] = ()  # columns left out before anything else (a site label, a leaky column)
    clean: CleanConfig = field(default_factory=CleanConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    algorithms: tuple[str, ...] = ALGORITHM_NAMES
    grid: GridSize = "full"
    grid_overrides: dict[str, dict[str, list]] = field(default_factory=dict)  # {algorithm: {param: values}}
    scoring: str = "roc_auc"  # one of evaluate.SCORINGS: chooses the grid point and the algorithm
    folds: int = 0  # 0 = 5 when every class has >= 25 training rows, else 3
    test_size: float = 0.2
    seed: int = 0
    imbalance: Imbalance = "auto"
    smote_max_rows: int = 5000  # auto: SMOTE up to this many training rows, class weights above
    balanced_share: float = 0.4  # auto: nothing when the minority class has at least this share
    decision_threshold: float = 0.5  # probability of the positive class at which the label is 1
    n_jobs: int = 1  # GridSearchCV workers (progress events per fold need 1)
    permutation_repeats: int = 5
    max_columns: int = DEFAULT_MAX_COLUMNS
    progress: ProgressFn | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("progress", "clean", "select")}
        data["algorithms"], data["exclude"] = list(self.algorithms), list(self.exclude)
        return {**data, "clean": self.clean.to_dict(), "select": self.select.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)} - {"progress"}
        data = {k: v for k, v in data.items() if k in known}
        if isinstance(data.get("clean"), dict):
            data["clean"] = CleanConfig.from_dict(data["clean"])
        if isinstance(data.get("select"), dict):
            data["select"] = SelectConfig.from_dict(data["select"])
        for key in ("algorithms", "exclude"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class TabularResult:
    config: dict[str, Any]
    target: dict[str, Any]  # rule, labels, counts
    split: dict[str, Any]  # rows, train/test sizes, folds, duplicate rows dropped
    imbalance: dict[str, Any]  # strategy and why
    algorithms: dict[str, dict[str, Any]]  # per algorithm: best_params, cv {metric: mean/std}, test metrics, seconds
    chosen: str
    pipeline: Any = field(repr=False)  # the chosen algorithm's pipeline, refitted on the whole training split
    selection: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # the cleaner's report on the training split
    schema: dict[str, Any] = field(default_factory=dict)
    permutation_importance: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    dataset_sha256: str = ""
    test_labels: np.ndarray | None = field(default=None, repr=False)
    test_probabilities: np.ndarray | None = field(default=None, repr=False)
    # every algorithm's test-split probabilities (the comparison chart: all ROC/PR curves on one figure)
    algorithm_probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def test(self) -> dict[str, Any]:
        return self.algorithms[self.chosen]["test"]

    def summary(self) -> dict[str, Any]:
        """Everything but the fitted pipeline and the arrays: what metrics.json holds."""
        skip = {"pipeline", "test_labels", "test_probabilities", "algorithm_probabilities"}
        return {k: v for k, v in asdict_shallow(self).items() if k not in skip}


def asdict_shallow(obj) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def dataset_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a frame (column names, then cells as text): same data, same hash."""
    h = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


def choose_imbalance(y: np.ndarray, cfg: TrainConfig) -> dict[str, Any]:
    """The imbalance strategy for these training labels, and why (recorded with the model)."""
    counts = np.bincount(y, minlength=2)
    share = float(counts.min() / counts.sum())
    facts = {"minority_share": round(share, 4), "train_rows": int(counts.sum())}
    if cfg.imbalance != "auto":
        return {"strategy": cfg.imbalance, "reason": "set in the configuration", **facts}
    if share >= cfg.balanced_share:
        return {"strategy": "none", "reason": f"minority share {share:.2f} >= {cfg.balanced_share}", **facts}
    if counts.sum() <= cfg.smote_max_rows:
        reason = f"minority share {share:.2f} < {cfg.balanced_share} and {counts.sum()} <= {cfg.smote_max_rows} rows"
        return {"strategy": "smote", "reason": reason, **facts}
    reason = f"minority share {share:.2f} < {cfg.balanced_share} and {counts.sum()} > {cfg.smote_max_rows} rows"
    return {"strategy": "class_weight", "reason": reason, **facts}


def build_pipeline(
    cfg: TrainConfig, algorithm: str, imbalance: str = "none", *, smote_k: int = 5, memory: str | None = None
) -> Pipeline:
    """The unfitted pipeline for one algorithm (the steps the module docstring lists).

    ``memory``: a cache directory for the fitted steps before ``model``. The grid varies only
    ``model__`` parameters, so each fold's cleaning/encoding/selection/SMOTE is fitted once and
    reused across grid points; the cache key is the fold's own training rows, so nothing leaks."""
    algo = ALGORITHMS[algorithm]
    # chi² needs non-negative inputs: scale numbers to [0, 1] for it.
    scaler = "minmax" if cfg.select.method == "filter" and cfg.select.score == "chi2" else None
    class_weight = "balanced" if imbalance == "class_weight" and algo.class_weight else None
    resample = SMOTE(k_neighbors=smote_k, random_state=cfg.seed) if imbalance == "smote" else "passthrough"
    return Pipeline(
        [
            ("clean", TabularCleaner(cfg.clean)),
            ("encode", build_encoder(cfg.clean, scaler=scaler)),
            ("select", build_selector(cfg.select, cfg.seed)),
            ("resample", resample),
            ("model", algo.make(cfg.seed, class_weight)),
        ],
        memory=memory,
    )


class FoldScorer:
    """GridSearchCV scoring callable: every metric of one validation fold, and a progress event.

    GridSearchCV runs (grid point, fold) in grid-point-major order, so the call count gives the
    position; with n_jobs > 1 the calls happen in workers and no events are sent."""

    def __init__(self, threshold: float, progress: ProgressFn | None, algorithm: str, points: int, folds: int):
        self.threshold, self.progress = threshold, progress
        self.algorithm, self.points, self.folds, self.calls = algorithm, points, folds, 0
        self.error: Exception | None = None

    def __call__(self, estimator, X, y) -> dict[str, float]:
        scores = fold_scores(y, estimator.predict_proba(X)[:, 1], self.threshold)
        if self.progress is not None and self.error is None:
            point, fold = divmod(self.calls, self.folds)
            event = {
                "event": "fold",
                "algorithm": self.algorithm,
                "grid_point": point + 1,
                "grid_points": self.points,
                "folds_done": fold + 1,
                "folds": self.folds,
            }
            try:
                self.progress(event)
            except Exception as exc:  # sklearn would swallow it as a failed score
                self.error = exc  # re-raised by train() once this grid search returns (e.g. a cancel)
        self.calls += 1
        return scores


def _check_table(features: pd.DataFrame, cfg: TrainConfig) -> list[str]:
    if features.shape[1] > cfg.max_columns:
        raise TabularDataError(
            "too_many_columns", f"{features.shape[1]} feature columns; the limit is {cfg.max_columns}"
        )
    empty = [str(c) for c in features.columns if features[c].isna().all()]
    if empty and cfg.clean.empty_columns == "error":
        raise TabularDataError(
            "empty_column", f"columns with no value at all: {empty[:20]} (remove them, or clean.empty_columns='drop')"
        )
    if cfg.scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {cfg.scoring!r}")
    unknown = [a for a in cfg.algorithms if a not in ALGORITHMS]
    if unknown or not cfg.algorithms:
        raise ValueError(f"algorithms must be among {ALGORITHM_NAMES}, got {list(cfg.algorithms)}")
    return empty


def train(frame: pd.DataFrame, cfg: TrainConfig | None = None, *, progress: ProgressFn | None = None) -> TabularResult:
    """Profile-free training run: split, grid-search every algorithm, choose, explain, return.
    `progress` (else cfg.progress) receives every event."""
    cfg = cfg or TrainConfig()
    if progress is not None:
        cfg = replace(cfg, progress=progress)
    emit = cfg.progress or (lambda event: None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sha = dataset_sha256(frame)
    unknown = [c for c in cfg.exclude if c not in frame.columns or c == cfg.target]
    if unknown:
        raise TabularDataError("unknown_column", f"cannot exclude {unknown}: not a feature column")
    frame = frame.drop(columns=list(cfg.exclude))
    features, y, target_info = binary_target(
        frame, cfg.target, positive=cfg.positive, binarise_threshold=cfg.binarise_threshold
    )
    target_info = {
        **target_info,
        "column": cfg.target,
        "positive": cfg.positive,
        "binarise_threshold": cfg.binarise_threshold,
    }
    empty = _check_table(features, cfg)
    features = features.drop(columns=empty)
    features.columns = [str(c) for c in features.columns]
    n_dupes = 0
    if cfg.clean.drop_duplicate_rows:  # before the split: the same patient row on both sides inflates test scores
        keep = ~pd.concat([features, pd.Series(y, index=features.index, name="__y")], axis=1).duplicated()
        n_dupes = int((~keep).sum())
        features, y = features[keep.to_numpy()], y[keep.to_numpy()]
    counts = np.bincount(y, minlength=2)
    if len(y) < MIN_ROWS or counts.min() < 8:
        raise TabularDataError(
            "too_few_rows", f"{len(y)} rows with classes {counts.tolist()}: need {MIN_ROWS} rows and 8 of each class"
        )
    X_train, X_test, y_train, y_test = train_test_split(
        features, y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed
    )
    train_counts = np.bincount(y_train, minlength=2)
    n_folds = cfg.folds or (5 if train_counts.min() >= 25 else 3)
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=cfg.seed)
    imbalance = choose_imbalance(y_train, cfg)
    smote_k = int(max(1, min(5, train_counts.min() * (n_folds - 1) // n_folds - 1)))
    if imbalance["strategy"] == "class_weight":
        imbalance["unweighted"] = [a for a in cfg.algorithms if not ALGORITHMS[a].class_weight]
    if imbalance["strategy"] == "smote":
        imbalance["smote_k_neighbors"] = smote_k
    log.info("imbalance: %s (%s)", imbalance["strategy"], imbalance["reason"])
    split = {
        "rows": int(len(y)),
        "duplicate_rows_dropped": n_dupes,
        "empty_columns_dropped": empty,
        "train_rows": int(len(y_train)),
        "test_rows": int(len(y_test)),
        "test_size": cfg.test_size,
        "folds": n_folds,
        "seed": cfg.seed,
        "train_counts": train_counts.tolist(),
    }

    results: dict[str, dict[str, Any]] = {}
    fitted: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tabular-cache-") as cache:
        for name in cfg.algorithms:
            params = grid(name, cfg.grid, cfg.grid_overrides.get(name))
            points = grid_points(params)
            emit({"event": "algorithm_start", "algorithm": name, "grid_points": points, "folds": n_folds})
            scorer = FoldScorer(
                cfg.decision_threshold, cfg.progress if cfg.n_jobs == 1 else None, name, points, n_folds
            )
            search = GridSearchCV(
                build_pipeline(cfg, name, imbalance["strategy"], smote_k=smote_k, memory=cache),
                params,
                scoring=scorer,
                refit=cfg.scoring,
                cv=folds,
                n_jobs=cfg.n_jobs,
                error_score=np.nan,
            )
            t_algo, cpu_algo = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.filterwarnings("ignore", message=".*(k=|percentile|constant|Features .* are constant).*")
                search.fit(X_train, y_train)
            if scorer.error is not None:  # the progress callback asked to stop (or broke)
                raise scorer.error
            cv = search.cv_results_
            best = int(search.best_index_)
            if not np.isfinite(cv[f"mean_test_{cfg.scoring}"][best]):
                raise TabularDataError("training_failed", f"{name}: every grid point failed on the training folds")
            pipeline = search.best_estimator_.set_params(memory=None)  # the cache directory is temporary
            proba = pipeline.predict_proba(X_test)[:, 1]
            results[name] = {
                "best_params": {k.removeprefix("model__"): _plain(v) for k, v in search.best_params_.items()},
                "grid_points": points,
                "cv": {
                    m: {"mean": float(cv[f"mean_test_{m}"][best]), "std": float(cv[f"std_test_{m}"][best])}
                    for m in (*SCORINGS, "brier")
                },
                "test": binary_metrics(y_test, proba, cfg.decision_threshold),
                "seconds": round(time.perf_counter() - t_algo, 3),
                "cpu_seconds": round(time.process_time() - cpu_algo, 3),  # wall time lies on a shared machine
            }
            fitted[name] = (pipeline, proba)
            emit({"event": "algorithm_done", "algorithm": name, "cv": results[name]["cv"][cfg.scoring]["mean"]})
            log.info("%s: cv %s %.4f", name, cfg.scoring, results[name]["cv"][cfg.scoring]["mean"])

    chosen = max(cfg.algorithms, key=lambda a: results[a]["cv"][cfg.scoring]["mean"])
    pipeline, proba = fitted[chosen]
    t_explain = time.perf_counter()
    importance = permutation_table(
        pipeline, X_test, y_test, scoring=cfg.scoring, n_repeats=cfg.permutation_repeats, seed=cfg.seed
    )
    cleaner = pipeline.named_steps["clean"]
    result = TabularResult(
        config=cfg.to_dict(),
        target=target_info,
        split=split,
        imbalance=imbalance,
        algorithms=results,
        chosen=chosen,
        pipeline=pipeline,
        selection=selection_report(pipeline),
        quality=cleaner.report_,
        schema=build_schema(cleaner, X_train, target=target_info),
        permutation_importance=importance,
        dataset_sha256=sha,
        test_labels=y_test,
        test_probabilities=proba,
        algorithm_probabilities={a: p for a, (_, p) in fitted.items()},
    )
    result.timings = {
        "total_s": round(time.perf_counter() - t0, 3),
        "total_cpu_s": round(time.process_time() - cpu0, 3),
        "explain_s": round(time.perf_counter() - t_explain, 3),
        **{f"{a}_s": results[a]["seconds"] for a in cfg.algorithms},
    }
    emit({"event": "done", "chosen": chosen, "seconds": result.timings["total_s"]})
    return result


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
