"""`python -m ml_core` contracts: the last stdout line is one JSON object."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from ml_core.cli import main


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_json_contract(trained, tiny_data, capsys, tmp_path):
    result, _ = trained
    main(
        [
            "evaluate",
            "--data",
            str(tiny_data / "test"),
            "--model",
            str(result.package_dir),
            "--json",
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    out = last_json(capsys)
    for key in ("n", "accuracy", "macro_f1", "weighted_f1", "roc_auc_macro", "ece", "per_class", "confusion_matrix"):
        assert key in out, key
    assert out["n"] == 18 and set(out["per_class"]) == {"COVID-19", "NORMAL", "PNEUMONIA"}
    assert {"precision", "recall", "f1", "support"} <= set(out["per_class"]["NORMAL"])
    assert sum(map(sum, out["confusion_matrix"])) == 18
    assert sorted(p.split("/")[-1] for p in out["plots"]) == ["calibration.png", "confusion_matrix.png", "roc.png"]
    # a dataset with splits is scored on its test split by default
    main(["evaluate", "--data", str(tiny_data), "--model", str(result.package_dir), "--json"])
    assert last_json(capsys)["split"] == "test"


def test_bench_json_contract(trained, tiny_data, capsys):
    result, _ = trained
    main(
        [
            "bench",
            "--model",
            str(result.package_dir),
            "--data",
            str(tiny_data),
            "--runs",
            "3",
            "--eval-images",
            "12",
            "--json",
        ]
    )
    out = last_json(capsys)
    for key in ("torch_p50_ms", "served_p50_ms", "speedup_served_vs_torch", "served_format", "batch_images_per_s"):
        assert key in out, key
    assert out["served_format"] == "fp32"
    assert out["speedup_served_vs_torch"] == pytest.approx(out["torch_p50_ms"] / out["served_p50_ms"])
    assert set(out["engines"]) == {"torch", "fp32", "int8-dynamic", "int8-static", "served"}
    assert "macro_f1_delta_vs_fp32" in out["engines"]["int8-static"]


def test_predict_and_augment_commands(trained, tiny_data, capsys, tmp_path):
    result, _ = trained
    files = sorted((tiny_data / "test" / "NORMAL").glob("*.png"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    main(["predict", "--model", str(result.package_dir), *map(str, files), str(broken)])
    preds = last_json(capsys)["predictions"]
    assert [p["label"] in ("COVID-19", "NORMAL", "PNEUMONIA") for p in preds[:2]] == [True, True]
    assert "error" in preds[2]
    main(
        [
            "augment",
            "--src",
            str(tiny_data / "val"),
            "--out",
            str(tmp_path / "aug"),
            "--copies",
            "2",
            "--level",
            "medium",
        ]
    )
    assert last_json(capsys)["written"] == 2 * 18


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no model package"):
        main(["evaluate", "--data", str(tmp_path), "--model", str(tmp_path / "nope"), "--json"])


def test_train_command_builds_a_package_and_tracks_it_in_mlflow(tiny_data, tmp_path, capsys):
    pytest.importorskip("mlflow")
    from ml_core import tracking

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--out",
            str(tmp_path / "run"),
            "--arch",
            "cxr_tiny",
            "--image-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--format",
            "fp32",
            "--mlflow",
            "--tracking-uri",
            store,
            "--register",
            "cxr-cli",
            "--alias",
            "challenger",
            "--name",
            "cxr-cli",
        ]
    )
    out = last_json(capsys)
    assert out["epochs_run"] == 2 and out["served_format"] == "fp32" and out["registered"] == ["cxr-cli", "1"]
    assert (tmp_path / "run" / "package" / "package.json").is_file()
    assert tracking.get_alias_version(store, "cxr-cli", "challenger") == "1"
    assert tracking.list_versions(store, "cxr-cli")[0].run_id == out["mlflow_run_id"]


def test_train_command_warm_starts_from_a_package_and_mlflow_records_it(trained, tiny_data, tmp_path, capsys):
    pytest.importorskip("mlflow")
    import mlflow

    from ml_core.package import file_sha256, load_package_meta

    champion = trained[0].package_dir
    weights_sha = file_sha256(champion / load_package_meta(champion).torch_weights)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--out",
            str(tmp_path / "run"),
            "--arch",
            "cxr_tiny",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--no-package",
            "--pretrained",
            str(champion),
            "--mlflow",
            "--tracking-uri",
            store,
        ]
    )
    out = last_json(capsys)
    assert out["initialisation"]["kind"] == "warm_start" and out["initialisation"]["sha256"] == weights_sha
    run = mlflow.MlflowClient(store).get_run(out["mlflow_run_id"])
    assert run.data.params["init.kind"] == "warm_start"
    assert run.data.params["init.sha256"] == weights_sha
    assert run.data.tags["initialisation"].startswith("warm start from cxr-tiny-trained")
