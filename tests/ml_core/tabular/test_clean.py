"""Each cleaner rule, on tiny frames: what it changes, that it is learnt from the fit rows only,
and that the quality report counts what it did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_core.tabular.clean import CleanConfig, TabularCleaner, build_preprocessor, zero_is_impossible


def fit(frame: pd.DataFrame, **cfg) -> TabularCleaner:
    return TabularCleaner(CleanConfig(**cfg)).fit(frame.drop(columns=["target"], errors="ignore"))


def test_strip_whitespace_and_missing_tokens_are_counted():
    X = pd.DataFrame({"a": ["x", " x", "y\t", "?", " NA ", "y"] * 4, "n": ["1.5", "\t2", "3", "?", "5", "6.5"] * 4})
    c = fit(X)
    out = c.transform(X)
    assert c.kinds_ == {"a": "boolean", "n": "numeric"}
    assert out["a"].tolist()[:3] == ["x", "x", "y"] and out["a"].iloc[5] == "y"
    assert out["a"].isna().sum() == 8  # '?' and ' NA ' -> missing
    assert out["n"].dtype == np.float64 and out["n"].tolist()[:3] == [1.5, 2.0, 3.0]
    rules = c.report_["rules"]
    assert rules["strip_whitespace"]["columns"] == {"a": 12, "n": 4}  # " x", "y\t", " NA "
    assert rules["missing_tokens"]["columns"] == {"a": 8, "n": 4}
    assert rules["text_to_number"]["columns"]["n"] == {"converted": 20, "unparseable_to_missing": 0}


def test_category_spellings_are_normalised_and_mapped():
    X = pd.DataFrame({"smoker": ["Yes", " yes", "YES ", "no", "No", "y", "n", "no"] * 3})
    c = fit(X, category_map={"y": "yes", "n": "no"})
    assert sorted(c.categories_["smoker"]) == ["no", "yes"]
    assert c.transform(X)["smoker"].tolist()[:8] == ["yes", "yes", "yes", "no", "no", "yes", "no", "no"]
    assert c.report_["rules"]["normalise_categories"]["columns"]["smoker"]["changed"] == 15  # 5 per block of 8


def test_zeros_are_missing_only_where_zero_is_impossible(frame):
    c = fit(frame)
    out = c.transform(frame.drop(columns=["target"]))
    assert set(c.zero_missing_) == {"bmi", "blood_pressure", "glucose"}
    assert out["bmi"].isna().sum() == 6 and out["blood_pressure"].isna().sum() == 3
    assert c.report_["rules"]["zero_as_missing"]["columns"] == {"bmi": 6, "blood_pressure": 3, "glucose": 0}
    # the zero is a real value in a column not on the list, and when the rule is switched off
    assert not zero_is_impossible("pregnancies") and zero_is_impossible("BloodPressure")
    assert fit(frame, zero_as_missing="none").transform(frame.drop(columns=["target"]))["bmi"].eq(0).sum() == 6
    explicit = fit(frame, zero_as_missing=("noise",))
    assert explicit.zero_missing_ == ["noise"]


def test_zero_sent_as_text_is_still_missing(frame):
    """A JSON form sends numbers as strings: the rules must not depend on the dtype."""
    c = fit(frame)
    row = frame.drop(columns=["target"]).iloc[[20]].astype(object)
    row["bmi"] = "0"
    row["glucose"] = " 120 "
    out = c.transform(row)
    assert np.isnan(out["bmi"].iloc[0]) and out["glucose"].iloc[0] == 120.0


def test_identifier_constant_and_duplicate_columns_are_dropped(frame):
    X = frame.drop(columns=["target"]).assign(glucose_copy=frame["glucose"], row=np.arange(len(frame)))
    c = fit(X)
    assert set(c.dropped_) == {"patient_id", "constant", "glucose_copy", "row"}
    assert "duplicate of column 'glucose'" in c.dropped_["glucose_copy"]
    assert "patient_id" not in c.transform(X).columns
    kept = fit(X, drop_identifiers=False, drop_constant=False, drop_duplicate_columns=False)
    assert {"patient_id", "constant", "glucose_copy"} <= set(kept.columns_)


def test_integer_codes_with_few_levels_are_categories():
    X = pd.DataFrame({"cp": [1.0, 2.0, 3.0, 4.0] * 10, "age": np.arange(40.0) % 17 + 40})
    c = fit(X)
    assert c.kinds_["cp"] == "categorical" and c.kinds_["age"] == "numeric"
    assert c.transform(X)["cp"].tolist()[:4] == ["1", "2", "3", "4"]


def test_outliers_are_clipped_to_the_training_fences_when_enabled():
    X = pd.DataFrame({"x": list(np.linspace(0, 10, 40)) + [1000.0]})
    c = fit(X, clip_outliers=True, clip_iqr_factor=1.5)
    lo, hi = c.bounds_["x"]
    assert hi == pytest.approx(7.5 + 1.5 * 5, rel=0.05)
    assert c.transform(pd.DataFrame({"x": [1e6, -1e6]}))["x"].tolist() == [hi, lo]
    assert c.report_["rules"]["clip_outliers"]["columns"]["x"]["clipped"] == 1
    assert fit(X).transform(pd.DataFrame({"x": [1e6]}))["x"].iloc[0] == 1e6  # off by default


def test_unseen_category_becomes_missing_then_imputed(frame):
    pre = build_preprocessor(CleanConfig()).fit(frame.drop(columns=["target"]))
    row = frame.drop(columns=["target"]).iloc[[0]].copy()
    row["site"] = "mars"
    encoded = pd.DataFrame(pre.transform(row), columns=pre.get_feature_names_out())
    site_cols = [c for c in encoded.columns if c.startswith("site_")]
    assert encoded[site_cols].to_numpy().sum() == 1  # the most frequent site, not an error or all-zero row


@pytest.mark.parametrize("imputer", ["median", "mean", "knn"])
def test_numeric_imputers_fill_every_cell_and_scaling_centres(frame, imputer):
    X = frame.drop(columns=["target"])
    pre = build_preprocessor(CleanConfig(numeric_imputer=imputer)).fit(X)
    out = pd.DataFrame(pre.transform(X), columns=pre.get_feature_names_out())
    assert not out.isna().any().any()
    assert {"glucose", "bmi", "blood_pressure", "noise", "smoker_yes"} <= set(out.columns)
    assert abs(out["glucose"].mean()) < 0.1 and out["glucose"].std() == pytest.approx(1, abs=0.1)


def test_median_comes_from_the_fit_rows_only(frame):
    X = frame.drop(columns=["target"])
    fit_rows, other = X.iloc[:80], X.iloc[80:].assign(glucose=10_000.0)
    pre = build_preprocessor(CleanConfig(scaler="none")).fit(fit_rows)
    imputer = pre.named_steps["encode"].named_transformers_["num"].named_steps["impute"]
    names = list(pre.named_steps["encode"].transformers_[0][2])
    expected = TabularCleaner(CleanConfig()).fit(fit_rows).transform(fit_rows)["glucose"].median()
    assert imputer.statistics_[names.index("glucose")] == pytest.approx(expected)
    row = other.iloc[[0]].assign(glucose=np.nan)
    out = pd.DataFrame(pre.transform(row), columns=pre.get_feature_names_out())
    assert out["glucose"].iloc[0] == pytest.approx(expected)


def test_missing_required_column_is_named(frame):
    c = fit(frame)
    with pytest.raises(ValueError, match="glucose"):
        c.transform(frame.drop(columns=["target", "glucose"]))
    # dropped columns (identifier, constant) need not be sent
    assert len(c.transform(frame.drop(columns=["target", "patient_id", "constant"]))) == len(frame)


def _frame_by_frame(c: TabularCleaner, X: pd.DataFrame) -> pd.DataFrame:
    """transform as a chain of pandas frames (the fit-time rules, then clipping and unseen
    categories column by column): what the one-frame transform must reproduce cell for cell."""
    X = X.assign(**{name: np.nan for name in c.feature_names_in_ if name not in X.columns})
    typed = c._typed(c._normalise(X)[c.columns_])
    for col, (lo, hi) in c.bounds_.items():
        typed[col] = np.clip(typed[col].to_numpy(), lo, hi)
    for col in c.columns_:
        if c.kinds_[col] != "numeric":
            known = set(c.categories_[col])
            typed[col] = np.array([v if v in known else np.nan for v in typed[col].to_numpy()], dtype=object)
    return typed


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"clip_outliers": True, "clip_iqr_factor": 0.5},
        {"numeric": ("smoker",), "categorical": ("noise",)},
        {"normalise_categories": False, "drop_identifiers": False, "drop_constant": False},
        {"zero_as_missing": "none", "category_map": {"y": "yes"}},
    ],
)
@pytest.mark.parametrize("seed", [0, 3])
def test_transform_builds_one_frame_with_the_same_cells_and_dtypes_as_the_frame_chain(cfg, seed):
    from ml_core.tabular.testing import make_frame

    X = make_frame(120, seed=seed).drop(columns=["target"])
    c = TabularCleaner(CleanConfig(**cfg)).fit(X)
    other = make_frame(40, seed=seed + 10).drop(columns=["target"])
    cases = [
        X,
        other,
        other.iloc[[0]],  # one row: the API's case
        other.astype(object).where(other.notna(), None).iloc[:5],  # JSON-like cells (validate_rows)
        other.astype(str).iloc[:6],  # every cell as text
        other.assign(smoker="maybe", site=None).iloc[:4],  # unseen and missing categories only
    ]
    if "patient_id" not in c.columns_:
        cases.append(other.drop(columns=["patient_id", "constant"]).iloc[:3])  # dropped columns left out
    for rows in cases:
        pd.testing.assert_frame_equal(c.transform(rows), _frame_by_frame(c, rows), check_exact=True)
