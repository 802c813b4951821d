"""The cleaner: configurable rules as scikit-learn steps, fitted on training rows only.

``build_preprocessor(CleanConfig)`` returns ``Pipeline([("clean", TabularCleaner), ("encode",
ColumnTransformer)])``. ``TabularCleaner`` learns, from the rows it is fitted on, which text
columns are numbers, which columns are identifiers/constant/duplicates (dropped), which
integer codes are categories, the outlier bounds; ``encode`` imputes (median, mean or KNN for
numbers, most frequent for categories), one-hot encodes and scales. Both sit inside the model's
pipeline, so cross-validation refits them on each training fold and the saved model carries
exactly the transformation it was trained with. ``cleaner.report_`` says what each rule changed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

Kind = Literal["numeric", "categorical", "boolean", "identifier", "constant", "empty"]
KEPT_KINDS = ("numeric", "categorical", "boolean")

# Quantities for which a recorded 0 is physiologically impossible, i.e. a hidden missing value
# (Pima's BloodPressure/BMI/Insulin, the heart sites' chol/trestbps). Matched on the column name
# lower-cased with non-letters removed: whole names first, then fragments.
IMPOSSIBLE_ZERO_NAMES = frozenset(
    {"bp", "sbp", "dbp", "trestbps", "bmi", "chol", "bgr", "bu", "sc", "hemo", "hb", "pcv", "sod", "pot", "thalach"}
    | {"hr", "spo", "wbcc", "rbcc", "glucose", "insulin", "skinthickness"}
)
IMPOSSIBLE_ZERO_FRAGMENTS = (
    "pressure",
    "cholesterol",
    "glucose",
    "insulin",
    "skinthickness",
    "heartrate",
    "haemoglobin",
    "hemoglobin",
    "sodium",
    "potassium",
    "creatinine",
    "weight",
    "height",
    "temperature",
    "pulse",
    "bmi",
)
IDENTIFIER_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|mrn|nhs|record|patientid|subjectid|index)($|[_\s.-])|^unnamed")
DEFAULT_MISSING_TOKENS = ("?", "na", "n/a", "nan", "null", "none", "-", "--", "missing", "#n/a")


@dataclass
class CleanConfig:
    strip_whitespace: bool = True
    missing_tokens: tuple[str, ...] = DEFAULT_MISSING_TOKENS  # compared lower-cased, after stripping
    normalise_categories: bool = True  # lower-case, single spaces: 'Yes', ' yes', 'YES ' -> 'yes'
    category_map: dict[str, str] = field(default_factory=dict)  # after normalising, e.g. {"y": "yes"}
    numeric_share: float = 0.9  # a text column whose values parse as numbers this often is numeric
    zero_as_missing: tuple[str, ...] | Literal["auto", "none"] = "auto"  # "auto": IMPOSSIBLE_ZERO_* names
    drop_identifiers: bool = True
    drop_constant: bool = True
    drop_duplicate_columns: bool = True
    empty_columns: Literal["error", "drop"] = "error"  # a column with no value at all (train() checks)
    drop_duplicate_rows: bool = True  # before the train/test split, so no row is on both sides (train())
    numeric: tuple[str, ...] = ()  # force these columns numeric
    categorical: tuple[str, ...] = ()  # force these columns categorical
    max_code_levels: int = 5  # integer-valued columns with 3..N levels are coded categories (cp, thal)
    numeric_imputer: Literal["median", "mean", "knn"] = "median"
    categorical_imputer: Literal["most_frequent", "constant"] = "most_frequent"  # constant: a 'missing' level
    knn_neighbors: int = 5
    clip_outliers: bool = False
    clip_iqr_factor: float = 3.0  # clip outside [Q1 - f*IQR, Q3 + f*IQR] of the training rows
    scaler: Literal["standard", "robust", "minmax", "none"] = "standard"
    max_categories: int = 20  # one-hot columns per feature; rarer levels share an 'infrequent' column

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanConfig:
        known = set(cls.__dataclass_fields__)
        data = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**data)


def zero_is_impossible(name: str) -> bool:
    key = re.sub(r"[^a-z]", "", str(name).lower())
    return key in IMPOSSIBLE_ZERO_NAMES or any(f in key for f in IMPOSSIBLE_ZERO_FRAGMENTS)


def is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


class TabularCleaner(TransformerMixin, BaseEstimator):
    """Rule-based cleaning learnt on the training rows; DataFrame in, DataFrame out.

    Output: the kept columns in a fixed order, numbers as float64 (missing = NaN), categories
    and booleans as normalised text (object dtype), so ``encode`` can route them by dtype.
    """

    def __init__(self, config: CleanConfig | None = None):
        self.config = config

    # --- fitting -----------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y=None) -> TabularCleaner:
        cfg = self.config or CleanConfig()
        X = _as_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        counts: dict[str, dict[str, Any]] = {}
        self.text_numeric_: list[str] = [
            c for c in X.columns if is_text(X[c]) and self._numeric_share(X[c], cfg) >= cfg.numeric_share
        ]
        self.text_numeric_ += [c for c in cfg.numeric if c in X.columns and c not in self.text_numeric_]
        if cfg.zero_as_missing == "auto":
            zero_cols = [c for c in X.columns if zero_is_impossible(c)]
        elif cfg.zero_as_missing == "none":
            zero_cols = []
        else:
            zero_cols = [c for c in cfg.zero_as_missing if c in X.columns]
        self.zero_missing_ = zero_cols
        # Columns read as numbers: numeric at fit time, or text that is (nearly) all numbers.
        self.numeric_in_: list[str] = [
            c for c in X.columns if not is_text(X[c]) and not pd.api.types.is_bool_dtype(X[c])
        ] + [c for c in self.text_numeric_ if is_text(X[c])]
        frame = self._normalise(X, counts)
        self.kinds_: dict[str, str] = {}
        self.dropped_: dict[str, str] = {}
        for col in frame.columns:
            kind, reason = self._infer_kind(col, frame[col], cfg)
            self.kinds_[col] = kind
            if kind not in KEPT_KINDS:
                if (kind == "identifier" and not cfg.drop_identifiers) or (
                    kind == "constant" and not cfg.drop_constant
                ):
                    self.kinds_[col] = "numeric" if pd.api.types.is_numeric_dtype(frame[col]) else "categorical"
                else:
                    self.dropped_[col] = reason
        typed = self._typed(frame)
        if cfg.drop_duplicate_columns:
            self._drop_duplicates(typed)
        self.columns_ = [c for c in frame.columns if c not in self.dropped_]
        self.bounds_: dict[str, tuple[float, float]] = {}
        numeric = [c for c in self.columns_ if self.kinds_[c] == "numeric"]
        if cfg.clip_outliers:
            for col in numeric:
                q1, q3 = np.nanpercentile(typed[col], [25, 75]) if typed[col].notna().any() else (np.nan, np.nan)
                if np.isfinite(q1) and q3 > q1:
                    f = cfg.clip_iqr_factor
                    self.bounds_[col] = (float(q1 - f * (q3 - q1)), float(q3 + f * (q3 - q1)))
        self.categories_ = {
            c: sorted(typed[c].dropna().unique().tolist()) for c in self.columns_ if self.kinds_[c] != "numeric"
        }
        self.report_ = self._report(typed, counts, cfg)
        return self

    @staticmethod
    def _numeric_share(series: pd.Series, cfg: CleanConfig) -> float:
        vals = _strip_values(series)
        vals = vals[~vals.str.lower().isin(cfg.missing_tokens) & (vals != "")]
        if vals.empty:
            return 0.0
        return float(pd.to_numeric(vals, errors="coerce").notna().mean())

    def _infer_kind(self, name: str, s: pd.Series, cfg: CleanConfig) -> tuple[str, str]:
        values = s.dropna()
        n, distinct = len(values), values.nunique()
        if n == 0:
            return "empty", "no value in the training rows"
        if distinct <= 1:
            return "constant", f"one value only ({values.iloc[0]!r})"
        if name in cfg.numeric:
            return "numeric", ""
        if name in cfg.categorical:
            return ("boolean" if distinct == 2 else "categorical"), ""
        if distinct == 2:
            return "boolean", ""
        unique_share = distinct / n
        if IDENTIFIER_NAME.search(str(name).lower()) and unique_share >= 0.9:
            return "identifier", "named like an identifier, values (nearly) all distinct"
        if not is_text(s):
            whole = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
            if whole and distinct <= cfg.max_code_levels:
                return "categorical", ""
            if whole and distinct == n and n >= 20:
                steps = np.diff(np.sort(values.to_numpy(dtype=float)))
                if np.all(steps == 1):
                    return "identifier", "a run of consecutive distinct integers (a row number)"
            return "numeric", ""
        if n >= 20 and unique_share > 0.9:
            return "identifier", "text with (nearly) all values distinct (an identifier or free text)"
        return "categorical", ""

    def _drop_duplicates(self, typed: pd.DataFrame) -> None:
        seen: dict[int, list[str]] = {}
        for col in typed.columns:
            if col in self.dropped_:
                continue
            key = int(pd.util.hash_pandas_object(typed[col].astype(str), index=False).sum())
            for other in seen.get(key, []):
                if typed[col].astype(str).equals(typed[other].astype(str)):
                    self.dropped_[col] = f"duplicate of column {other!r}"
                    break
            else:
                seen.setdefault(key, []).append(col)

    # --- the rules, shared by fit and transform ----------------------------------------

    def _normalise(self, X: pd.DataFrame, counts: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
        """Strip, missing tokens -> NaN, text -> numbers, category spellings, impossible zeros -> NaN."""
        return pd.DataFrame(self._normalised_arrays(X, self.feature_names_in_, counts), index=X.index)

    def _normalised_arrays(
        self, X: pd.DataFrame, columns, counts: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, np.ndarray]:
        """``_normalise``'s rules for ``columns`` (each column on its own), as numpy arrays.

        Plain numpy/Python per column rather than chained pandas string ops: a one-row
        prediction must stay in the millisecond range (the API answers in < 20 ms)."""
        cfg = self.config or CleanConfig()
        tokens = {t.lower() for t in cfg.missing_tokens}
        numeric_cols = set(self.numeric_in_)
        out: dict[str, np.ndarray] = {}
        for col in columns:
            s = X[col]
            c: dict[str, Any] = {}
            if col in numeric_cols and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                # Text (or numbers arriving as text, e.g. from a JSON form): the text rules.
                texts = _text_cells(s.to_numpy(dtype=object), cfg.strip_whitespace, tokens, c)
                if col in numeric_cols:
                    values = np.full(len(texts), np.nan)
                    bad = 0
                    for i, t in enumerate(texts):
                        if t is not None:
                            try:
                                values[i] = float(t)
                            except ValueError:
                                bad += 1
                    c["unparseable"] = bad
                    c["to_number"] = int(np.isfinite(values).sum())
                else:
                    values = np.empty(len(texts), dtype=object)
                    changed, examples = 0, {}
                    for i, t in enumerate(texts):
                        if t is None:
                            values[i] = np.nan  # np.nan, not None: SimpleImputer looks for NaN in object columns
                            continue
                        norm = self.normalise_category(t) if cfg.normalise_categories else t
                        if norm != t:
                            changed += 1
                            if len(examples) < 5:
                                examples[t] = norm
                        values[i] = norm
                    c["spelling"], c["examples"] = changed, examples
            if col in self.zero_missing_ and values.dtype == np.float64:
                zeros = values == 0
                c["zeros"] = int(zeros.sum())
                values = np.where(zeros, np.nan, values)
            out[col] = values
            if counts is not None:
                counts[col] = c
        return out

    def normalise_category(self, value: Any) -> str:
        cfg = self.config or CleanConfig()
        text = " ".join(str(value).split()).lower()
        return cfg.category_map.get(text, text)

    def _typed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Categories as text (integer codes such as cp = 1..4 as '1'..'4'), numbers as float."""
        out = {col: self._typed_column(col, frame[col]) for col in frame.columns}
        return pd.DataFrame(out, index=frame.index)

    def _typed_column(self, col: str, s: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
        """One column of ``_typed``: a Series (or an array from ``_normalised_arrays``) as ``_typed`` writes it."""
        kind = self.kinds_.get(col)
        if kind in ("categorical", "boolean") and s.dtype == np.float64:
            v = s if isinstance(s, np.ndarray) else s.to_numpy()
            typed = np.array([np.nan if x != x else _code_text(x) for x in v], dtype=object)
            return typed if isinstance(s, np.ndarray) else pd.Series(typed, index=s.index)
        if kind == "numeric" and s.dtype != np.float64:
            if isinstance(s, np.ndarray):  # as the Series _normalise's DataFrame would hold
                return pd.to_numeric(pd.Series(s), errors="coerce").astype(np.float64).to_numpy()
            return pd.to_numeric(s, errors="coerce").astype(np.float64)
        return s

    def typed_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """Every input column after the rules but before dropping and clipping (schema, profile)."""
        return self._typed(self._normalise(_as_frame(X)))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _as_frame(X)
        absent = [c for c in self.feature_names_in_ if c not in X.columns]
        if absent:
            # Identifier/constant columns are not needed at prediction time: fill them in.
            needed = [c for c in absent if c in self.columns_]
            if needed:
                raise ValueError(f"columns missing from the input: {needed}")
            X = X.assign(**dict.fromkeys(absent, np.nan))
        # The same rules as _typed(_normalise(X)) on the kept columns, column by column on numpy
        # arrays and ONE DataFrame at the end (not a frame per step: a one-row prediction pays
        # pandas' per-frame cost, not the rows'). Same cells and dtypes as that chain.
        out = self._normalised_arrays(X, self.columns_)
        for col in self.columns_:
            values = self._typed_column(col, out[col])
            if col in self.bounds_:
                lo, hi = self.bounds_[col]
                values = np.clip(values, lo, hi)
            if self.kinds_[col] != "numeric":  # a category never seen in training: missing, then imputed
                known = set(self.categories_[col])
                values = np.array([v if v in known else np.nan for v in values], dtype=object)
            out[col] = values
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.columns_, dtype=object)

    # --- the quality report --------------------------------------------------------------

    def _report(self, typed: pd.DataFrame, counts: dict[str, dict[str, Any]], cfg: CleanConfig) -> dict[str, Any]:
        def per_column(key: str) -> dict[str, int]:
            return {c: v[key] for c, v in counts.items() if v.get(key)}

        clipped = {}
        for col, (lo, hi) in self.bounds_.items():
            n = int(((typed[col] < lo) | (typed[col] > hi)).sum())
            clipped[col] = {"low": round(lo, 6), "high": round(hi, 6), "clipped": n}
        kept = self.columns_
        numeric = [c for c in kept if self.kinds_[c] == "numeric"]
        missing = {c: int(typed[c].isna().sum()) for c in kept if typed[c].isna().any()}
        rules = {
            "strip_whitespace": {"enabled": cfg.strip_whitespace, "columns": per_column("whitespace")},
            "missing_tokens": {"tokens": list(cfg.missing_tokens), "columns": per_column("missing_tokens")},
            "text_to_number": {
                "columns": {
                    c: {"converted": counts[c].get("to_number", 0), "unparseable_to_missing": counts[c]["unparseable"]}
                    for c in self.text_numeric_
                    if c in counts
                }
            },
            "normalise_categories": {
                "enabled": cfg.normalise_categories,
                "columns": {
                    c: {"changed": v["spelling"], "examples": v["examples"]}
                    for c, v in counts.items()
                    if v.get("spelling")
                },
            },
            "zero_as_missing": {"columns": {c: counts[c].get("zeros", 0) for c in self.zero_missing_}},
            "drop_columns": dict(self.dropped_),
            "clip_outliers": {"enabled": cfg.clip_outliers, "iqr_factor": cfg.clip_iqr_factor, "columns": clipped},
            "impute": {
                "numeric": cfg.numeric_imputer,
                "categorical": cfg.categorical_imputer,
                "missing_cells": missing,
            },
            "encode": {"one_hot": {c: len(self.categories_[c]) for c in kept if self.kinds_[c] != "numeric"}},
            "scale": {"method": cfg.scaler, "columns": numeric},
        }
        for rule in rules.values():
            cols = rule.get("columns")
            if isinstance(cols, dict):
                rule["cells"] = sum(
                    v if isinstance(v, int) else v.get("changed", v.get("clipped", 0)) for v in cols.values()
                )
        return {"rows": len(typed), "kinds": dict(self.kinds_), "kept": list(kept), "rules": rules}


def _as_frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("TabularCleaner needs a pandas DataFrame (named columns)")
    if not all(isinstance(c, str) for c in X.columns):
        X = X.rename(columns=str)
    return X


def _strip_values(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str).str.strip()


def _text_cells(values: np.ndarray, strip: bool, tokens: set[str], counts: dict[str, Any]) -> list[str | None]:
    """Cells as text, stripped; None for empty cells and missing tokens ('?', 'NA'...); counts what changed."""
    out: list[str | None] = []
    stripped = missing = 0
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(None)
            continue
        t = v if isinstance(v, str) else _code_text(v)
        st = t.strip() if strip else t
        if st != t:
            stripped += 1
        if not st or st.lower() in tokens:
            missing += 1
            out.append(None)
        else:
            out.append(st)
    counts["whitespace"], counts["missing_tokens"] = stripped, missing
    return out


def _code_text(value: Any) -> str:
    if isinstance(value, float | int | np.number) and float(value).is_integer():
        return str(int(value))
    return str(value)


# --- the encoding step -------------------------------------------------------------------


def make_scaler(name: str):
    return {"standard": StandardScaler(), "robust": RobustScaler(), "minmax": MinMaxScaler(), "none": "passthrough"}[
        name
    ]


def build_encoder(cfg: CleanConfig, *, scaler: str | None = None) -> ColumnTransformer:
    """Impute + scale numbers, impute + one-hot categories; columns routed by the cleaner's dtypes."""
    scale = make_scaler(scaler or cfg.scaler)
    if cfg.numeric_imputer == "knn":  # distances need scaled inputs: scale first (scalers skip NaN)
        numeric = Pipeline([("scale", scale), ("impute", KNNImputer(n_neighbors=cfg.knn_neighbors))])
    else:
        numeric = Pipeline([("impute", SimpleImputer(strategy=cfg.numeric_imputer)), ("scale", scale)])
    if cfg.categorical_imputer == "constant":
        cat_impute = SimpleImputer(strategy="constant", fill_value="missing")
    else:
        cat_impute = SimpleImputer(strategy="most_frequent")
    categorical = Pipeline(
        [
            ("impute", cat_impute),
            (
                "onehot",
                OneHotEncoder(
                    drop="if_binary",
                    handle_unknown="infrequent_if_exist",
                    max_categories=cfg.max_categories,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include="number")),
            ("cat", categorical, make_column_selector(dtype_exclude="number")),
        ],
        verbose_feature_names_out=False,
    )


def build_preprocessor(cfg: CleanConfig | None = None, *, scaler: str | None = None) -> Pipeline:
    """``clean`` + ``encode`` as one scikit-learn Pipeline (pandas in, a dense float matrix out)."""
    cfg = cfg or CleanConfig()
    return Pipeline([("clean", TabularCleaner(cfg)), ("encode", build_encoder(cfg, scaler=scaler))])
