"""A trained tabular model on disk, and predictions from it.

Layout of a model directory (``save_model(result, out_dir)``)::

    model.skops      the fitted pipeline (clean -> encode -> select -> resample -> model), skops format
    schema.json      the expected input: columns, kinds, allowed ranges and categories
    metrics.json     the run: config, CV and test figures per algorithm, quality and selection reports
    manifest.json    format, versions, chosen algorithm, threshold, labels, sha256 of model.skops
    *.png            confusion matrix, ROC and precision-recall curves of the held-out test split;
                     comparison.png: the ROC and PR curves of every algorithm trained, side by side

Loading never unpickles: skops rebuilds objects from a JSON description and refuses every type
that is not on ``TRUSTED_TYPES`` (the types our pipelines are made of), and the file's sha256 must
match the manifest before skops even reads it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_core.tabular.schema import validate_rows

FORMAT = "deepmed-tabular"
FORMAT_VERSION = 1
MODEL_FILE = "model.skops"
COMPARISON_PLOT = "comparison.png"  # every algorithm's ROC and PR curves on one figure

# Every non-default type a pipeline built by train.build_pipeline can hold (all six algorithms,
# every selector, SMOTE). skops trusts plain scikit-learn estimators and builtins by itself.
TRUSTED_TYPES = frozenset(
    {
        "ml_core.tabular.clean.CleanConfig",
        "ml_core.tabular.clean.TabularCleaner",
        "ml_core.tabular.select.MutualInfo",
        "imblearn.pipeline.Pipeline",
        "imblearn.over_sampling._smote.base.SMOTE",
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._scorer._Scorer",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.tree._tree.Tree",
    }
)


class ModelFileError(ValueError):
    """A model directory that cannot be loaded safely: missing files, wrong hash, untrusted types."""


@dataclass
class TabularModel:
    pipeline: Any
    schema: dict[str, Any]
    manifest: dict[str, Any]
    path: Path

    @property
    def threshold(self) -> float:
        return float(self.manifest["decision_threshold"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["target"]["labels"])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability of already validated rows."""
        return self.pipeline.predict_proba(frame)[:, 1]

    def predict(self, rows: list[dict[str, Any]] | dict[str, Any] | pd.DataFrame, *, top: int = 3) -> list[dict]:
        """Validate ``rows`` against the schema (``SchemaError`` names the field), then predict.

        Each answer: class (0/1 and its label), probability of the positive class, the threshold,
        and the ``top`` input columns that moved this row's probability most (see ``contributions``)."""
        frame = validate_rows(self.schema, rows)
        if top:
            proba, contrib = predict_with_contributions(self, frame)
        else:
            proba = self.predict_proba(frame)
            contrib = [[] for _ in proba]
        out = []
        for p, c in zip(proba, contrib):
            cls = int(p >= self.threshold)
            out.append(
                {
                    "class": cls,
                    "label": self.labels[cls],
                    "probability": round(float(p), 6),
                    "threshold": self.threshold,
                    "top_features": c[:top],
                }
            )
        return out


def contributions(model: TabularModel, frame: pd.DataFrame, proba: np.ndarray) -> list[list[dict[str, Any]]]:
    """Per row, per column: probability now minus probability with that column set to its
    training median / most frequent value ("what if this value were typical"), largest first.

    Model-agnostic and cheap (one batch of n_rows x n_columns predictions); a local
    explanation for the physician, not a causal statement."""
    columns = list(model.schema["columns"])
    if not columns:
        return [[] for _ in range(len(frame))]
    moved = model.predict_proba(what_if_batch(frame, columns, with_rows=False))
    return _ranked(frame, columns, proba, moved.reshape(len(columns), len(frame)))


def predict_with_contributions(model: TabularModel, frame: pd.DataFrame) -> tuple[np.ndarray, list[list[dict]]]:
    """The rows' probabilities and their ``contributions`` from ONE pass through the pipeline
    (the rows first, then every what-if variant, in one batch): a pipeline pass costs milliseconds
    whatever the rows, so a one-row prediction pays it once, not twice. Same figures as
    ``predict_proba`` then ``contributions``."""
    columns = list(model.schema["columns"])
    if not columns:
        proba = model.predict_proba(frame)
        return proba, [[] for _ in range(len(frame))]
    both = model.predict_proba(what_if_batch(frame, columns, with_rows=True))
    both = both.reshape(len(columns) + 1, len(frame))
    return both[0], _ranked(frame, columns, both[0], both[1:])


def what_if_batch(frame: pd.DataFrame, columns: list[dict[str, Any]], *, with_rows: bool) -> pd.DataFrame:
    """The rows (``with_rows``), then for each schema column a copy of the rows with that column
    set to its typical value (training median / most frequent), stacked in that order.

    Built as one object array and one DataFrame (object columns, as ``validate_rows`` gives):
    the same cells as concatenating per-column copies of ``frame``, without a dozen pandas
    copies and a concat on every one-row prediction."""
    n = len(frame)
    values = frame.to_numpy(dtype=object)
    out = np.tile(values, ((1 if with_rows else 0) + len(columns), 1))
    position = {name: j for j, name in enumerate(frame.columns)}
    start = n if with_rows else 0
    for k, col in enumerate(columns):
        typical = col.get("median") if col["kind"] == "numeric" else col.get("most_frequent")
        out[start + k * n : start + (k + 1) * n, position[col["name"]]] = typical
    return pd.DataFrame(out, columns=frame.columns, dtype=object)


def _ranked(
    frame: pd.DataFrame, columns: list[dict[str, Any]], proba: np.ndarray, moved: np.ndarray
) -> list[list[dict]]:
    cells = {col["name"]: frame[col["name"]].to_numpy() for col in columns}  # not frame.iloc per cell
    out = []
    for i in range(len(frame)):
        rows = [
            {
                "feature": col["name"],
                "value": _plain(cells[col["name"]][i]),
                "effect": round(float(proba[i] - moved[j, i]), 6),
            }
            for j, col in enumerate(columns)
        ]
        out.append(sorted(rows, key=lambda r: -abs(r["effect"])))
    return out


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(result, out_dir: str | Path, *, name: str = "tabular-model", plots: bool = True) -> Path:
    """Write ``result`` (a ``train.TabularResult``) as a model directory; return its path."""
    import sklearn
    import skops.io as sio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    sio.dump(result.pipeline, model_path)
    untrusted = sorted(set(sio.get_untrusted_types(file=model_path)) - TRUSTED_TYPES)
    if untrusted:  # fail when saving, not on the physician's first prediction
        model_path.unlink()
        raise ModelFileError(f"the pipeline holds types the loader would refuse: {untrusted}")
    write_json(out / "schema.json", result.schema)
    write_json(out / "metrics.json", result.summary())
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "algorithm": result.chosen,
        "best_params": result.algorithms[result.chosen]["best_params"],
        "decision_threshold": result.config["decision_threshold"],
        "scoring": result.config["scoring"],
        "target": result.target,
        "imbalance": result.imbalance,
        "test": {k: v for k, v in result.test.items() if k != "confusion_matrix"},
        "dataset_sha256": result.dataset_sha256,
        "model_sha256": file_sha256(model_path),
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "imbalanced-learn": _version("imblearn"),
            "skops": _version("skops"),
        },
    }
    write_json(out / "manifest.json", manifest)
    if plots and result.test_labels is not None:
        from ml_core.tabular.evaluate import save_plots

        save_plots(
            result.test_labels,
            result.test_probabilities,
            out,
            threshold=result.config["decision_threshold"],
            title=result.chosen,
        )
        if result.algorithm_probabilities:
            from ml_core.tabular.evaluate import save_comparison_plot

            save_comparison_plot(result.test_labels, result.algorithm_probabilities, out / COMPARISON_PLOT)
    return out


def load_model(path: str | Path, *, extra_trusted: tuple[str, ...] = ()) -> TabularModel:
    """Load a model directory written by ``save_model``; ``ModelFileError`` if anything is off."""
    import skops.io as sio

    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        schema = json.loads((path / "schema.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a tabular model directory ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: manifest format {manifest.get('format')!r}, expected {FORMAT!r}")
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise ModelFileError(f"{path}: {MODEL_FILE} is missing")
    digest = file_sha256(model_path)
    if digest != manifest.get("model_sha256"):
        raise ModelFileError(f"{model_path}: sha256 {digest[:12]}... does not match the manifest: file changed")
    data = model_path.read_bytes()
    found = set(sio.get_untrusted_types(data=data))
    refused = sorted(found - TRUSTED_TYPES - set(extra_trusted))
    if refused:
        raise ModelFileError(f"{model_path}: refusing to load untrusted types {refused}")
    pipeline = sio.loads(data, trusted=sorted(found))
    return TabularModel(pipeline=pipeline, schema=schema, manifest=manifest, path=path)


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(finite(obj), indent=2, sort_keys=True, default=json_default, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def finite(obj: Any) -> Any:
    """NaN/inf -> None throughout (strict JSON: browsers and MLflow reject NaN)."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    return str(value)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # pragma: no cover - reported, not needed
        return "unknown"
