"""Profile of an uploaded table before any training: ``profile(frame, target) -> dict``.

Per column: kind (numeric, categorical, boolean, identifier, constant, empty), missing cells
(empty cells and tokens such as '?'), distinct values, suspicious zeros where 0 is impossible
(blood pressure, BMI, cholesterol...), IQR outliers, duplicates of other columns; for the table:
duplicate rows, class balance, strongest correlations. ``save_profile_plots`` draws the
missingness, class balance and correlation PNGs. The kinds come from the same ``TabularCleaner``
rules training uses (with zeros kept, so they can be counted), so the profile says what the
cleaner will see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_core.tabular.clean import CleanConfig, TabularCleaner, zero_is_impossible
from ml_core.tabular.evaluate import save_figure

IQR_FACTOR = 1.5  # Tukey's fences, for the report (clipping in the cleaner uses its own factor)
TOP_CORRELATIONS = 10


def profile(frame: pd.DataFrame, target: str | None = None, clean: CleanConfig | None = None) -> dict[str, Any]:
    """A JSON-ready description of ``frame`` (the target column, if given, is profiled apart)."""
    cfg = CleanConfig(**{**(clean or CleanConfig()).to_dict(), "zero_as_missing": "none"})
    features = frame.drop(columns=[target]) if target and target in frame.columns else frame
    features = features.rename(columns=str)
    cleaner = TabularCleaner(cfg).fit(features)
    typed = cleaner.typed_frame(features)
    rules = cleaner.report_["rules"]
    columns = []
    for col in typed.columns:
        s = typed[col]
        kind = cleaner.kinds_[col]
        entry: dict[str, Any] = {
            "name": col,
            "kind": kind,
            "raw_dtype": str(features[col].dtype),
            "missing": int(s.isna().sum()),
            "missing_share": round(float(s.isna().mean()), 4),
            "distinct": int(s.nunique(dropna=True)),
            "missing_tokens": rules["missing_tokens"]["columns"].get(col, 0),
            "whitespace_cells": rules["strip_whitespace"]["columns"].get(col, 0),
        }
        if col in cleaner.dropped_:
            entry["dropped_by_cleaner"] = cleaner.dropped_[col]
        if s.dtype == np.float64 and s.notna().any():
            v = s.dropna().to_numpy()
            q1, q3 = np.percentile(v, [25, 75])
            lo, hi = q1 - IQR_FACTOR * (q3 - q1), q3 + IQR_FACTOR * (q3 - q1)
            entry.update(
                {
                    "min": float(v.min()),
                    "max": float(v.max()),
                    "mean": round(float(v.mean()), 6),
                    "median": float(np.median(v)),
                    "std": round(float(v.std(ddof=1)), 6) if len(v) > 1 else 0.0,
                    "outliers_iqr": int(((v < lo) | (v > hi)).sum()),
                    "zeros": int((v == 0).sum()),
                }
            )
            if zero_is_impossible(col) and entry["zeros"]:
                entry["suspicious_zeros"] = entry["zeros"]  # 0 mm Hg, 0 mg/dl: a missing value written as 0
        else:
            counts = s.dropna().astype(str).value_counts()
            entry["top_values"] = {str(k): int(v) for k, v in counts.head(10).items()}
        columns.append(entry)
    dupes = int(features.duplicated().sum())
    numeric = typed[[c for c in typed.columns if typed[c].dtype == np.float64 and c not in cleaner.dropped_]]
    report: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(features.shape[1]),
        "duplicate_rows": dupes,
        "missing_cells": int(sum(c["missing"] for c in columns)),
        "rows_with_missing": int(typed.isna().any(axis=1).sum()),
        "kinds": {
            k: sorted(c["name"] for c in columns if c["kind"] == k) for k in sorted(set(cleaner.kinds_.values()))
        },
        "constant_columns": sorted(c for c, why in cleaner.dropped_.items() if cleaner.kinds_[c] == "constant"),
        "identifier_columns": sorted(c for c, why in cleaner.dropped_.items() if cleaner.kinds_[c] == "identifier"),
        "empty_columns": sorted(c for c, why in cleaner.dropped_.items() if cleaner.kinds_[c] == "empty"),
        "duplicate_columns": {c: why for c, why in cleaner.dropped_.items() if why.startswith("duplicate of")},
        "suspicious_zeros": {c["name"]: c["suspicious_zeros"] for c in columns if c.get("suspicious_zeros")},
        "column_profiles": columns,
        "correlations": top_correlations(numeric),
        "correlation_matrix": {
            "columns": list(numeric.columns),
            "values": [
                [round(float(v), 4) if np.isfinite(v) else None for v in row] for row in numeric.corr().to_numpy()
            ],
        },
    }
    if target and target in frame.columns:
        report["target"] = class_balance(frame[target], target)
    return report


def class_balance(series: pd.Series, name: str) -> dict[str, Any]:
    values = series.map(lambda v: v.strip() if isinstance(v, str) else v).replace("", np.nan)
    labels = values.dropna().map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    counts = labels.value_counts()
    total = int(counts.sum())
    return {
        "column": name,
        "missing": int(values.isna().sum()),
        "counts": {str(k): int(v) for k, v in counts.items()},
        "shares": {str(k): round(int(v) / total, 4) for k, v in counts.items()} if total else {},
        "minority_share": round(float(counts.min() / total), 4) if total else None,
    }


def top_correlations(numeric: pd.DataFrame, n: int = TOP_CORRELATIONS) -> list[dict[str, Any]]:
    """The ``n`` strongest Pearson correlations between numeric columns (pairwise complete rows)."""
    if numeric.shape[1] < 2:
        return []
    corr = numeric.corr()
    pairs = []
    cols = list(corr.columns)
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            r = corr.iat[i, j]
            if np.isfinite(r):
                pairs.append({"a": cols[i], "b": cols[j], "r": round(float(r), 4)})
    return sorted(pairs, key=lambda p: -abs(p["r"]))[:n]


def save_profile_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """missingness.png, class_balance.png (with a target), correlation.png (two or more numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    cols = report["column_profiles"]

    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.25 * len(cols) + 1)))
    ax.barh([c["name"] for c in cols], [c["missing_share"] for c in cols], color="#c0504d")
    ax.barh(
        [c["name"] for c in cols],
        [c.get("suspicious_zeros", 0) / max(report["rows"], 1) for c in cols],
        left=[c["missing_share"] for c in cols],
        color="#f79646",
        label="suspicious zeros",
    )
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of rows missing")
    ax.set_title("Missing values per column")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(save_figure(fig, out / "missingness.png", dpi=90))

    if "target" in report and report["target"]["counts"]:
        counts = report["target"]["counts"]
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(list(counts), list(counts.values()), color=["#4f81bd", "#c0504d", "#9bbb59"][: len(counts)])
        ax.set_title(f"Class balance ({report['target']['column']})")
        ax.set_ylabel("rows")
        paths.append(save_figure(fig, out / "class_balance.png", dpi=90))

    matrix = report.get("correlation_matrix") or {}
    numeric = matrix.get("columns", [])
    if len(numeric) >= 2:
        corr = np.array([[np.nan if v is None else v for v in row] for row in matrix["values"]], dtype=float)
        fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(numeric), 0.8 + 0.45 * len(numeric)))
        im = ax.imshow(np.nan_to_num(corr), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(numeric)), numeric, rotation=90, fontsize=7)
        ax.set_yticks(range(len(numeric)), numeric, fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title("Correlation (numeric columns)")
        paths.append(save_figure(fig, out / "correlation.png", dpi=90))
    return paths
