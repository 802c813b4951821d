"""`python -m ml_core.tabular` contracts: the last stdout line is one JSON object; refusals exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml_core.tabular.cli import main
from ml_core.tabular.testing import make_frame

REPO = Path(__file__).resolve().parents[3]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "risk.csv"
    make_frame(150, seed=11).to_csv(path, index=False)
    return path


def test_profile_train_evaluate_predict(csv, tmp_path, capsys):
    main(["profile", "--data", str(csv), "--target", "target", "--out", str(tmp_path / "profile"), "--json"])
    prof = last_json(capsys)
    assert prof["rows"] == 150 and prof["suspicious_zeros"]["bmi"] == 6 and len(prof["file"]["sha256"]) == 64
    assert (tmp_path / "profile" / "profile.json").is_file() and len(prof["plots"]) == 3

    model = tmp_path / "model"
    args = ["train", "--data", str(csv), "--out", str(model), "--grid", "quick", "--folds", "3", "--json"]
    main([*args, "--algorithms", "logistic_regression", "naive_bayes", "--threshold", "0.4", "--scoring", "f1_macro"])
    trained = last_json(capsys)
    assert trained["chosen"] in ("logistic_regression", "naive_bayes") and trained["scoring"] == "f1_macro"
    assert trained["test"]["threshold"] == 0.4 and trained["model"] == str(model)
    assert set(trained["algorithms"]) == {"logistic_regression", "naive_bayes"}

    main(["evaluate", "--model", str(model), "--data", str(csv), "--plots", str(tmp_path / "plots"), "--json"])
    ev = last_json(capsys)
    assert ev["n"] == 150 and ev["threshold"] == 0.4 and ev["roc_auc"] > 0.8 and len(ev["plots"]) == 3

    row = {"glucose": 180, "bmi": 33.1, "blood_pressure": 80, "noise": 0.1, "smoker": "yes", "site": "north"}
    main(["predict", "--model", str(model), "--row", json.dumps(row), "--json"])
    pred = last_json(capsys)
    assert pred["predictions"][0]["class"] == 1 and "not a diagnosis" in pred["notice"]
    main(["predict", "--model", str(model), "--data", str(csv), "--top", "0", "--json"])
    assert len(last_json(capsys)["predictions"]) == 150


def test_refusals_exit_2_with_a_json_error(csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--data", str(bad), "--json"])
    assert exc.value.code == 2 and last_json(capsys)["error"]["code"] == "not_text"
    with pytest.raises(SystemExit):
        main(["train", "--data", str(csv), "--target", "nope", "--json"])
    assert last_json(capsys)["error"]["code"] == "unknown_target"
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(tmp_path), "--row", "{}", "--json"])
    assert last_json(capsys)["error"]["code"] == "model_file"


def test_module_entry_point_runs(csv):
    out = subprocess.run(
        [sys.executable, "-m", "ml_core.tabular", "profile", "--data", str(csv), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["rows"] == 150
