"""Saved models: skops (no pickle), a sha256 check, a type allowlist; same predictions after loading."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin

from ml_core.tabular.artifacts import (
    ModelFileError,
    contributions,
    file_sha256,
    load_model,
    predict_with_contributions,
    save_model,
    what_if_batch,
)
from ml_core.tabular.schema import SchemaError, validate_rows
from ml_core.tabular.testing import make_frame, quick_config
from ml_core.tabular.train import train


class Sneaky(TransformerMixin, BaseEstimator):
    """A type no allowlist knows: what a crafted model file would smuggle in."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


@pytest.fixture(scope="module")
def saved(trained_small, tmp_path_factory):
    return save_model(trained_small, tmp_path_factory.mktemp("model") / "m", name="glucose-risk")


def test_directory_layout_and_manifest(saved, trained_small):
    names = sorted(p.name for p in saved.iterdir())
    assert names == [
        "comparison.png",  # every algorithm's ROC and PR curves on one figure (the comparison page)
        "confusion_matrix.png",
        "manifest.json",
        "metrics.json",
        "model.skops",
        "pr.png",
        "roc.png",
        "schema.json",
    ]
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["model_sha256"] == file_sha256(saved / "model.skops")
    assert manifest["algorithm"] == trained_small.chosen and manifest["name"] == "glucose-risk"
    assert manifest["imbalance"]["strategy"] == trained_small.imbalance["strategy"]
    metrics = json.loads((saved / "metrics.json").read_text())
    assert set(metrics["algorithms"]) == {"logistic_regression", "random_forest"} and "quality" in metrics
    assert (saved / "model.skops").read_bytes()[:2] == b"PK"  # a zip of JSON + arrays, not a pickle stream
    assert set(trained_small.algorithm_probabilities) == {"logistic_regression", "random_forest"}
    assert (saved / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_loaded_model_predicts_exactly_like_the_one_in_memory(saved, trained_small):
    model = load_model(saved)
    rows = make_frame(60, seed=7).drop(columns=["target"])
    frame = validate_rows(model.schema, rows)
    assert np.array_equal(model.predict_proba(frame), trained_small.pipeline.predict_proba(frame)[:, 1])
    answers = model.predict(rows.iloc[:3], top=2)
    assert [a["class"] for a in answers] == [
        int(p >= 0.5) for p in trained_small.pipeline.predict_proba(frame.iloc[:3])[:, 1]
    ]
    assert all(len(a["top_features"]) == 2 and a["label"] in ("0", "1") for a in answers)


def test_contributions_point_at_the_feature_that_drives_the_row(saved):
    model = load_model(saved)
    typical = {c["name"]: c.get("median", c.get("most_frequent")) for c in model.schema["columns"]}
    high = typical | {"glucose": 190.0}
    answer = model.predict([high], top=3)[0]
    assert answer["top_features"][0]["feature"] == "glucose" and answer["top_features"][0]["effect"] > 0.2


def test_prediction_with_contributions_is_one_pipeline_pass_with_the_same_figures(saved, monkeypatch):
    model = load_model(saved)
    rows = make_frame(40, seed=9).drop(columns=["target"]).iloc[:4]
    frame = validate_rows(model.schema, rows)
    proba = model.predict_proba(frame)
    expected = contributions(model, frame, proba)  # the rows, then the what-if batch: two passes
    passes = []
    real = type(model.pipeline).predict_proba
    monkeypatch.setattr(type(model.pipeline), "predict_proba", lambda self, X: passes.append(len(X)) or real(self, X))
    answers = model.predict(rows, top=len(model.schema["columns"]))
    assert passes == [4 * (len(model.schema["columns"]) + 1)]  # one batch: the rows and every variant
    assert [a["probability"] for a in answers] == [round(float(p), 6) for p in proba]
    assert [a["top_features"] for a in answers] == expected
    passes.clear()
    model.predict(rows, top=0)
    assert passes == [4]  # no contributions asked: the rows alone


def test_schema_rejects_before_the_pipeline_runs(saved):
    model = load_model(saved)
    glucose = next(c for c in model.schema["columns"] if c["name"] == "glucose")
    with pytest.raises(SchemaError) as exc:
        model.predict([{c["name"]: None for c in model.schema["columns"]} | {"glucose": glucose["allowed_max"] * 10}])
    assert exc.value.field == "glucose" and exc.value.code == "out_of_range"


def test_a_changed_model_file_is_refused(saved, tmp_path):
    copy = tmp_path / "m"
    copy.mkdir()
    for p in saved.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "model.skops").read_bytes())
    data[-30] ^= 1
    (copy / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match the manifest"):
        load_model(copy)


def test_an_untrusted_type_is_refused_even_with_a_matching_hash(saved, trained_small, tmp_path):
    copy = tmp_path / "evil"
    copy.mkdir()
    for p in saved.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    pipe = trained_small.pipeline
    evil = type(pipe)([("sneak", Sneaky()), *pipe.steps])
    sio.dump(evil, copy / "model.skops")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model_sha256"] = file_sha256(copy / "model.skops")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="untrusted types.*Sneaky"):
        load_model(copy)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelFileError, match="not a tabular model directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("algorithm", ["svm", "knn", "naive_bayes", "decision_tree"])
def test_every_algorithm_with_smote_and_each_selector_saves_and_loads(algorithm, tmp_path):
    from ml_core.tabular.select import SelectConfig

    select = {"svm": SelectConfig(score="mutual_info"), "knn": SelectConfig(method="wrapper", k=3)}.get(
        algorithm, SelectConfig(score="chi2")
    )
    frame = make_frame(120, seed=5, positive_share=0.3)
    result = train(frame, quick_config(algorithms=(algorithm,), imbalance="smote", select=select))
    model = load_model(save_model(result, tmp_path / algorithm, plots=False))
    X = validate_rows(model.schema, frame.drop(columns=["target"]).iloc[:20])
    assert np.allclose(model.predict_proba(X), result.pipeline.predict_proba(X)[:, 1])
    assert isinstance(X, pd.DataFrame)


def _plain_pipeline_answers(model, rows: pd.DataFrame) -> tuple[np.ndarray, list[list[dict]]]:
    """The plain way, one pipeline call per what-if variant: for each schema column a pandas copy
    of the rows with that column set to its typical value; effects rounded and ranked as predict does."""
    frame = validate_rows(model.schema, rows)
    proba = model.pipeline.predict_proba(frame)[:, 1]
    effects = {}
    for col in model.schema["columns"]:
        variant = frame.copy()
        variant[col["name"]] = col.get("median") if col["kind"] == "numeric" else col.get("most_frequent")
        effects[col["name"]] = proba - model.pipeline.predict_proba(variant)[:, 1]
    ranked = []
    for i in range(len(frame)):
        row = [
            {"feature": name, "value": frame[name].iloc[i], "effect": round(float(e[i]), 6)}
            for name, e in effects.items()
        ]
        ranked.append(sorted(row, key=lambda r: -abs(r["effect"])))
    return proba, ranked


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_the_one_batch_prediction_equals_the_plain_pipeline_row_by_row_and_variant_by_variant(saved, seed):
    model = load_model(saved)
    rows = make_frame(40, seed=seed).drop(columns=["target"])
    rows = rows.astype(object).where(rows.notna(), None)  # JSON-like cells, missing ones included
    rows.loc[rows.index[1], "smoker"] = " YES "  # a spelling the cleaner normalises
    n_columns = len(model.schema["columns"])
    for batch in [rows.iloc[[i]] for i in range(8)] + [rows.iloc[8:20]]:
        proba, ranked = _plain_pipeline_answers(model, batch)
        answers = model.predict(batch, top=n_columns)
        assert np.allclose([a["probability"] for a in answers], np.round(proba, 6), rtol=0, atol=1e-9)
        assert [a["top_features"] for a in answers] == [
            [r | {"value": None if r["value"] != r["value"] else r["value"]} for r in row] for row in ranked
        ]
        assert [a["class"] for a in answers] == [int(p >= model.threshold) for p in proba]
        frame = validate_rows(model.schema, batch)
        batch_proba, _ = predict_with_contributions(model, frame)
        assert np.allclose(batch_proba, proba, rtol=0, atol=1e-9)


def test_the_what_if_batch_is_the_concatenated_per_column_copies(saved):
    model = load_model(saved)
    rows = make_frame(30, seed=5).drop(columns=["target"]).iloc[:3]
    frame = validate_rows(model.schema, rows)
    copies = []
    for col in model.schema["columns"]:
        v = frame.copy()
        v[col["name"]] = col.get("median") if col["kind"] == "numeric" else col.get("most_frequent")
        copies.append(v)
    columns = model.schema["columns"]
    pd.testing.assert_frame_equal(
        what_if_batch(frame, columns, with_rows=True), pd.concat([frame, *copies], ignore_index=True), check_exact=True
    )
    pd.testing.assert_frame_equal(
        what_if_batch(frame, columns, with_rows=False), pd.concat(copies, ignore_index=True), check_exact=True
    )
