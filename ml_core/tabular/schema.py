"""The input schema of a trained model: which columns, their kinds, allowed ranges and categories.

``build_schema(cleaner, X_train)`` derives it from the fitted cleaner and the training rows;
``validate_rows(schema, rows)`` checks prediction input against it (plain JSON, no pipeline
needed, so the web app can validate a form before queueing anything) and returns the frame
the pipeline takes, or raises ``SchemaError`` naming the row and field.
Allowed numeric range: the training range widened by ``RANGE_MARGIN`` of its span on each
side (never below 0 when no training value was negative): values far outside what the model
saw are refused rather than extrapolated silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
RANGE_MARGIN = 0.25


class SchemaError(ValueError):
    """Prediction input that does not match the model's schema; ``errors`` lists every problem."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        first = errors[0]
        self.field = first["field"]
        self.code = first["code"]
        self.row = first.get("row")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"row {self.row}, field {self.field!r}: {first['message']}{more}")


def build_schema(cleaner, X_train: pd.DataFrame, *, target: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = cleaner.config
    typed = cleaner.typed_frame(X_train)
    columns = []
    for col in cleaner.columns_:
        kind = cleaner.kinds_[col]
        entry: dict[str, Any] = {"name": col, "kind": kind, "required": True, "nullable": True}
        values = typed[col].dropna()
        if kind == "numeric":
            lo, hi = float(values.min()), float(values.max())
            span = (hi - lo) or abs(hi) or 1.0
            allowed_lo = lo - RANGE_MARGIN * span
            entry.update(
                {
                    "min": lo,
                    "max": hi,
                    "allowed_min": max(allowed_lo, 0.0) if lo >= 0 else allowed_lo,
                    "allowed_max": hi + RANGE_MARGIN * span,
                    "median": float(values.median()),
                    "zero_is_missing": col in cleaner.zero_missing_,
                }
            )
        else:
            entry["categories"] = list(cleaner.categories_[col])
            entry["most_frequent"] = str(values.mode().iloc[0]) if len(values) else None
        columns.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "columns": columns,
        "ignored_columns": dict(cleaner.dropped_),
        "input_columns": [str(c) for c in cleaner.feature_names_in_],
        "normalise": {
            "strip_whitespace": cfg.strip_whitespace,
            "lowercase": cfg.normalise_categories,
            "category_map": dict(cfg.category_map),
            "missing_tokens": list(cfg.missing_tokens),
        },
        "target": target or {},
    }


def validate_rows(schema: dict[str, Any], rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Check ``rows`` against ``schema``; the frame of the model's input columns, or ``SchemaError``."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    if isinstance(rows, dict):
        rows = [rows]
    if not rows:
        raise SchemaError([{"row": None, "field": None, "code": "no_rows", "message": "no rows to predict"}])
    norm = schema["normalise"]
    tokens = {t.lower() for t in norm["missing_tokens"]}
    errors: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append({"row": i, "field": None, "code": "wrong_type", "message": "a row must be an object"})
            continue
        for col in schema["columns"]:
            name = col["name"]
            if name not in row:
                errors.append({"row": i, "field": name, "code": "missing_column", "message": "missing"})
                continue
            problem = _check(col, row[name], norm, tokens)
            if problem:
                errors.append({"row": i, "field": name, "code": problem[0], "message": problem[1]})
    if errors:
        raise SchemaError(errors)
    frame = pd.DataFrame(rows)
    for name in schema["input_columns"]:  # ignored (identifier/constant) columns are optional
        if name not in frame.columns:
            frame[name] = np.nan
    frame = frame[schema["input_columns"]]
    return frame.astype(object).where(frame.notna(), np.nan)


def _is_missing(value: Any, tokens: set[str]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and (not value.strip() or value.strip().lower() in tokens)


def _check(col: dict[str, Any], value: Any, norm: dict[str, Any], tokens: set[str]) -> tuple[str, str] | None:
    if _is_missing(value, tokens):
        return None if col["nullable"] else ("missing_value", "a value is required")
    if col["kind"] == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float | str | np.number):
            return "wrong_type", f"expected a number, got {type(value).__name__}"
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except ValueError:
            return "wrong_type", f"expected a number, got {str(value)[:40]!r}"
        if not math.isfinite(number):
            return "wrong_type", f"expected a finite number, got {value!r}"
        if number == 0 and col.get("zero_is_missing"):
            return None  # read as missing, like in training
        if not col["allowed_min"] <= number <= col["allowed_max"]:
            return (
                "out_of_range",
                f"{number:g} is outside the allowed range {col['allowed_min']:g} to {col['allowed_max']:g}"
                f" (training data: {col['min']:g} to {col['max']:g})",
            )
        return None
    if not isinstance(value, str | int | float | bool | np.number):
        return "wrong_type", f"expected one of {col['categories']}, got {type(value).__name__}"
    if normalise_value(value, norm) in col["categories"]:
        return None
    return "unknown_category", f"{str(value)[:40]!r} is not one of {col['categories']}"


def normalise_value(value: Any, norm: dict[str, Any]) -> str:
    """A category value as the cleaner writes it: numbers '4.0' -> '4', text stripped/lower-cased/mapped."""
    if isinstance(value, bool):
        value = int(value)
    text = str(value)
    try:
        number = float(text)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
    except ValueError:
        pass
    if norm.get("lowercase", True):
        text = " ".join(text.split()).lower()
        return norm.get("category_map", {}).get(text, text)
    return text.strip()


# Units of common clinical columns (matched on the name lower-cased, non-letters removed), for
# forms generated from a schema: the schema itself keeps what the data says, not what it means.
UNITS = {
    "age": "years",
    "glucose": "mg/dl",
    "bgr": "mg/dl",
    "chol": "mg/dl",
    "cholesterol": "mg/dl",
    "insulin": "µU/ml",
    "bmi": "kg/m²",
    "bloodpressure": "mm Hg",
    "trestbps": "mm Hg",
    "bp": "mm Hg",
    "sbp": "mm Hg",
    "dbp": "mm Hg",
    "thalach": "beats/min",
    "heartrate": "beats/min",
    "oldpeak": "mm",
    "skinthickness": "mm",
    "bu": "mg/dl",
    "sc": "mg/dl",
    "sod": "mEq/l",
    "pot": "mEq/l",
    "hemo": "g/dl",
    "pcv": "%",
    "wc": "cells/µl",
    "rc": "millions/µl",
}


def column_unit(name: str) -> str:
    """The unit of a known clinical column ('' when unknown)."""
    return UNITS.get(re.sub(r"[^a-z]", "", str(name).lower()), "")
