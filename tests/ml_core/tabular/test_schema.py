"""The input schema: built from the training rows, and every bad value named by field."""

from __future__ import annotations

import pytest

from ml_core.tabular.schema import SchemaError, validate_rows


def good_row(schema) -> dict:
    row = {}
    for col in schema["columns"]:
        row[col["name"]] = col["median"] if col["kind"] == "numeric" else col["most_frequent"]
    return row


def errors_of(schema, rows) -> list[tuple]:
    with pytest.raises(SchemaError) as exc:
        validate_rows(schema, rows)
    return [(e["row"], e["field"], e["code"]) for e in exc.value.errors]


def test_schema_describes_the_kept_columns(trained_small):
    schema = trained_small.schema
    cols = {c["name"]: c for c in schema["columns"]}
    assert set(cols) == {"glucose", "bmi", "blood_pressure", "noise", "smoker", "site"}
    assert cols["smoker"]["categories"] == ["no", "yes"] and cols["site"]["kind"] == "categorical"
    assert cols["bmi"]["zero_is_missing"] and cols["bmi"]["min"] > 0  # zeros were missing, not the minimum
    assert (
        cols["glucose"]["allowed_min"]
        < cols["glucose"]["min"]
        < cols["glucose"]["max"]
        < cols["glucose"]["allowed_max"]
    )
    assert set(schema["ignored_columns"]) == {"patient_id", "constant"}
    assert schema["target"]["column"] == "target"


def test_valid_rows_pass_with_text_numbers_missing_values_and_spelling(trained_small):
    schema = trained_small.schema
    row = good_row(schema) | {"glucose": "120.5", "smoker": " YES", "bmi": 0, "blood_pressure": None, "site": "?"}
    frame = validate_rows(schema, [row, good_row(schema)])
    assert list(frame.columns) == schema["input_columns"] and len(frame) == 2
    assert frame["patient_id"].isna().all()  # ignored columns are optional


def test_out_of_range_wrong_type_unknown_category_and_missing_column_are_named(trained_small):
    schema = trained_small.schema
    glucose = next(c for c in schema["columns"] if c["name"] == "glucose")
    rows = [
        good_row(schema) | {"glucose": glucose["allowed_max"] + 1},
        good_row(schema) | {"bmi": "heavy"},
        good_row(schema) | {"smoker": "sometimes"},
        {k: v for k, v in good_row(schema).items() if k != "noise"},
        good_row(schema) | {"glucose": [1, 2]},
        good_row(schema) | {"bmi": True},
        good_row(schema) | {"glucose": float("inf")},
    ]
    assert errors_of(schema, rows) == [
        (0, "glucose", "out_of_range"),
        (1, "bmi", "wrong_type"),
        (2, "smoker", "unknown_category"),
        (3, "noise", "missing_column"),
        (4, "glucose", "wrong_type"),
        (5, "bmi", "wrong_type"),
        (6, "glucose", "wrong_type"),
    ]
    with pytest.raises(SchemaError, match="glucose.*outside the allowed range"):
        validate_rows(schema, rows[0])
    assert errors_of(schema, [])[0][2] == "no_rows"
    assert errors_of(schema, ["not a row"])[0][2] == "wrong_type"


def test_column_units_for_the_risk_form():
    from ml_core.tabular.schema import column_unit

    assert column_unit("glucose") == "mg/dl" and column_unit("Blood_Pressure") == "mm Hg"
    assert column_unit("BMI") == "kg/m²" and column_unit("noise") == ""
