"""The profile: kinds, missing cells, suspicious zeros, outliers, duplicates, balance, PNGs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ml_core.tabular.profile import profile, save_profile_plots
from ml_core.tabular.testing import make_frame


def test_profile_counts_what_the_frame_holds(tmp_path):
    frame = make_frame(100)
    frame.loc[frame.index[50], "glucose"] = 900.0  # an outlier
    frame = frame.assign(glucose_again=frame["glucose"])
    frame = frame.assign(cholesterol=np.where(frame.index % 10 == 0, 0.0, 180.0 + frame.index))
    frame = pd.concat([frame, frame.iloc[[60]]], ignore_index=True)  # a duplicate row
    report = profile(frame, "target")
    cols = {c["name"]: c for c in report["column_profiles"]}
    assert report["rows"] == 101 and report["columns"] == 10 and report["duplicate_rows"] == 1
    assert report["suspicious_zeros"] == {"bmi": 6, "blood_pressure": 3, "cholesterol": 11}
    assert cols["glucose"]["missing"] == 3 and cols["glucose"]["outliers_iqr"] >= 1
    assert cols["site"]["missing"] == 2 and cols["site"]["missing_tokens"] == 1  # '?' and an empty cell
    assert cols["smoker"]["kind"] == "boolean" and cols["smoker"]["whitespace_cells"] == 2
    assert report["identifier_columns"] == ["patient_id"] and report["constant_columns"] == ["constant"]
    assert "glucose_again" in report["duplicate_columns"]
    assert (
        report["target"]["counts"] == {str(k): int(v) for k, v in frame["target"].value_counts().items()}
        and 0 < report["target"]["minority_share"] <= 0.5
    )
    assert report["correlations"][0]["r"] == 1.0 or abs(report["correlations"][0]["r"]) <= 1
    json.dumps(report, allow_nan=False)  # strict JSON for the web page
    paths = save_profile_plots(report, tmp_path)
    assert sorted(p.name for p in paths) == ["class_balance.png", "correlation.png", "missingness.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_profile_without_a_target_has_no_balance(tmp_path):
    report = profile(make_frame(40).drop(columns=["target"]))
    assert "target" not in report
    assert [p.name for p in save_profile_plots(report, tmp_path)] == ["missingness.png", "correlation.png"]
