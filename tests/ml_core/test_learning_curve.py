"""Learning-curve benchmark on a tiny synthetic set: nested stratified subsets, JSON + PNG, CLI."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from ml_core.bench import (
    LearningCurveConfig,
    format_learning_curve_table,
    learning_curve,
    nested_train_subsets,
)
from ml_core.data import load_dataset
from ml_core.testing import make_tiny_imagefolder, tiny_train_config

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
PER_CLASS = 20


@pytest.fixture(scope="module")
def curve_data(tmp_path_factory):
    per_split = {"train": PER_CLASS, "val": 8, "test": 10}
    return make_tiny_imagefolder(tmp_path_factory.mktemp("lc") / "data", per_split=per_split, size=48)


def _paths(samples) -> set:
    return {s.path for s in samples}


def test_subsets_are_nested_stratified_and_seeded(curve_data):
    ds = load_dataset(curve_data)
    subsets = nested_train_subsets(ds, FRACTIONS, seed=0)
    assert list(subsets) == sorted(FRACTIONS)
    sizes = [len(subsets[f]) for f in FRACTIONS]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # strictly growing
    for small, large in itertools.pairwise(FRACTIONS):
        assert _paths(subsets[small]) < _paths(subsets[large])  # nested
    assert _paths(subsets[1.0]) == _paths(ds.split("train"))
    for f in FRACTIONS:
        counts = Counter(s.label for s in subsets[f])
        assert counts == {c: max(1, round(f * PER_CLASS)) for c in ds.classes}, f  # every class, in proportion
        assert all(s.split == "train" for s in subsets[f])
    # seeded: the same seed draws the same images, another seed other ones
    assert _paths(nested_train_subsets(ds, FRACTIONS, seed=0)[0.25]) == _paths(subsets[0.25])
    assert _paths(nested_train_subsets(ds, FRACTIONS, seed=1)[0.25]) != _paths(subsets[0.25])
    with pytest.raises(ValueError):
        nested_train_subsets(ds, (0.0, 0.5))


def test_subsets_keep_the_source_mix(tmp_path):
    # Two sources of unequal size inside each class: a subset keeps each (source, class) share.
    root = make_tiny_imagefolder(tmp_path / "data", per_split={"train": PER_CLASS, "val": 2}, size=16)
    rows = ["relative_path,source_dataset"]
    for path in sorted((root / "train").rglob("*.png")):
        index = int(path.stem.rsplit("_", 1)[1])
        rows.append(f"{path.relative_to(root).as_posix()},{'big' if index < 15 else 'small'}")
    (root / "provenance.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = load_dataset(root)
    subset = nested_train_subsets(ds, (0.2,), seed=0)[0.2]
    sources = Counter(("big" if int(s.path.stem.rsplit("_", 1)[1]) < 15 else "small", s.label) for s in subset)
    assert sources == {(src, c): n for c in ds.classes for src, n in (("big", 3), ("small", 1))}


def test_learning_curve_rows_json_and_plot(curve_data, tmp_path):
    # 'pretrained' here is a warm start from a state-dict file (no ImageNet weights for cxr_tiny):
    # it exercises the second init without downloading anything.
    from ml_core.models import ModelConfig, build_model

    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    torch.save(build_model(ModelConfig(architecture="cxr_tiny", num_classes=3, drop_rate=0.0)).state_dict(), start)
    cfg = LearningCurveConfig(
        fractions=(0.25, 0.5, 1.0),
        inits=("random", "pretrained"),
        architecture="cxr_tiny",
        pretrained=str(start),
        image_size=32,
        epochs=4,
        min_steps=16,
        batch_size=8,
        lr=1e-2,
        seed=3,
        threads=1,
    )
    base = tiny_train_config(curve_data, tmp_path / "unused")
    out = learning_curve(curve_data, cfg, tmp_path / "lc", base_train_config=base)

    assert out["complete"] and len(out["rows"]) == 6
    assert [(r["fraction"], r["init"]) for r in out["rows"]] == [
        (f, i) for f in (0.25, 0.5, 1.0) for i in ("random", "pretrained")
    ]
    n_images = [r["n_train_images"] for r in out["rows"] if r["init"] == "random"]
    assert n_images == [15, 30, 60]
    for r in out["rows"]:
        steps = max(1, r["n_train_images"] // cfg.batch_size)
        assert r["epochs"] == max(cfg.epochs, math.ceil(cfg.min_steps / steps)) == r["epochs_run"]  # no early stop
        assert 0.0 <= r["test_macro_f1"] <= 1.0 and 0.0 <= r["test_accuracy"] <= 1.0
        assert 1 <= r["best_epoch"] <= r["epochs"] and r["seconds"] > 0
    assert out["rows"][0]["epochs"] == 16 > out["rows"][-1]["epochs"] == 4  # 15 images: 1 step/epoch
    kinds = {(r["init"], r["initialisation"]["kind"], r["initialisation"]["name"]) for r in out["rows"]}
    assert kinds == {("random", "random", ""), ("pretrained", "state_dict", "start.pt")}
    full = next(r for r in out["rows"] if r["fraction"] == 1.0 and r["init"] == "random")
    assert full["test_macro_f1"] > 0.6  # learnable synthetic classes; chance is 1/3
    assert full["test_roc_auc_macro"] is not None and full["test_roc_auc_macro"] > 0.7
    assert [g["fraction"] for g in out["gains"]] == [0.25, 0.5, 1.0]
    by_key = {(r["fraction"], r["init"]): r for r in out["rows"]}
    for g in out["gains"]:
        diff = (
            by_key[(g["fraction"], "pretrained")]["test_macro_f1"] - by_key[(g["fraction"], "random")]["test_macro_f1"]
        )
        assert g["macro_f1_gain"] == pytest.approx(diff)

    written = json.loads((tmp_path / "lc" / "learning_curve.json").read_text())
    assert written["rows"] == json.loads(json.dumps(out["rows"])) and written["complete"]
    assert "min_steps" in written["rule"] and written["data"]["n_test_scored"] == 30
    png = (tmp_path / "lc" / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not list((tmp_path / "lc" / "runs").rglob("last.pt"))  # only best.pt is kept
    table = format_learning_curve_table(out)
    assert len(table.splitlines()) == 1 + 6 + 3 and "pretrained - random at 1" in table


def test_cli_learning_curve(curve_data, tmp_path, capsys):
    from ml_core.cli import main

    main(
        [
            "bench",
            "--learning-curve",
            "--data",
            str(curve_data),
            "--out",
            str(tmp_path / "lc"),
            "--fractions",
            "0.5",
            "--inits",
            "random",
            "--arch",
            "cxr_tiny",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--min-steps",
            "1",
            "--batch-size",
            "8",
            "--max-test-images",
            "12",
            "--json",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert [(r["fraction"], r["init"], r["n_train_images"], r["epochs"]) for r in out["rows"]] == [
        (0.5, "random", 30, 1)
    ]
    assert out["config"]["architecture"] == "cxr_tiny" and out["data"]["n_test_scored"] == 12
    assert out["gains"] == [] and any(line.startswith("learning curve: ") for line in lines)
    assert (tmp_path / "lc" / "learning_curve.png").is_file()
