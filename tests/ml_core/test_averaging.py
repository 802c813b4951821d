"""Uniform weight averaging (model soup) of checkpoints and packages, on the tiny trained model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ml_core.averaging import AveragingError, average_checkpoints
from ml_core.data import load_dataset
from ml_core.model_card import render_model_card
from ml_core.package import file_sha256, load_package_meta
from ml_core.pipeline import PackageConfig, build_package
from ml_core.testing import FAST_PACKAGE_SETTINGS, tiny_train_config
from ml_core.train import train


@pytest.fixture(scope="module")
def two_epochs(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("soup-run")
    train(tiny_train_config(tiny_data, out, epochs=2, keep_epoch_checkpoints=True))
    return out / "epoch-001.pt", out / "epoch-002.pt"


def _load(path):
    return torch.load(str(path), map_location="cpu", weights_only=False)


def test_average_is_the_mean_of_every_floating_tensor_and_records_its_members(two_epochs, tmp_path):
    first, second = two_epochs
    out = average_checkpoints([first, second], tmp_path / "soup.pt")
    soup, a, b = _load(out), _load(first), _load(second)
    floats = [k for k, v in a["model"].items() if v.is_floating_point()]
    integers = [k for k, v in a["model"].items() if not v.is_floating_point()]
    assert floats and integers  # cxr_tiny has BatchNorm: weights, running stats and a batch counter
    for key in floats:
        torch.testing.assert_close(soup["model"][key], (a["model"][key].float() + b["model"][key].float()) / 2)
    assert not torch.equal(a["model"][floats[0]], b["model"][floats[0]])  # the members really differ
    for key in integers:
        assert torch.equal(soup["model"][key], a["model"][key])
    assert [(m["kind"], m["epoch"], m["sha256"]) for m in soup["averaged_from"]] == [
        ("checkpoint", 1, file_sha256(first)),
        ("checkpoint", 2, file_sha256(second)),
    ]
    assert soup["epoch"] is None and "optimizer" not in soup
    assert soup["model_config"] == a["model_config"] and soup["preprocess"] == a["preprocess"]


def test_a_package_member_counts_with_its_torch_weights(trained, tmp_path):
    result, _ = trained
    best = result.best_checkpoint
    # the package keeps the best checkpoint's weights in fp16: the average is the mean of the two
    out = average_checkpoints([result.package_dir, best], tmp_path / "same.pt")
    soup, ckpt = _load(out), _load(best)
    meta = load_package_meta(result.package_dir)
    packaged = torch.load(str(result.package_dir / meta.torch_weights), map_location="cpu", weights_only=True)
    # The package's stem was folded to one grey channel: it joins as a third per channel (exact).
    stem = "features.0.weight"
    assert packaged[stem].shape[1] == 1 and ckpt["model"][stem].shape[1] == 3
    packaged[stem] = packaged[stem].float().repeat(1, 3, 1, 1) / 3
    for key, value in ckpt["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(soup["model"][key], (packaged[key].float() + value.float()) / 2)
            if key != stem:
                torch.testing.assert_close(soup["model"][key], value.float(), atol=2e-3, rtol=2e-3)
    package_record = soup["averaged_from"][0]
    assert package_record["kind"] == "package"
    assert package_record["sha256"] == file_sha256(result.package_dir / meta.torch_weights)


def test_members_that_cannot_be_averaged_are_refused(two_epochs, trained, tmp_path):
    first, second = two_epochs
    with pytest.raises(AveragingError, match="at least two"):
        average_checkpoints([first], tmp_path / "one.pt")
    result, _ = trained
    with pytest.raises(AveragingError, match="training checkpoint"):
        average_checkpoints([result.package_dir, result.package_dir], tmp_path / "packages.pt")

    other = _load(second)
    other["model_config"] = {**other["model_config"], "architecture": "tf_efficientnet_lite0"}
    torch.save(other, tmp_path / "other-arch.pt")
    with pytest.raises(AveragingError, match="architecture"):
        average_checkpoints([first, tmp_path / "other-arch.pt"], tmp_path / "bad.pt")

    missing = _load(second)
    missing["model"].pop(next(iter(missing["model"])))
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(AveragingError, match="same tensors"):
        average_checkpoints([first, tmp_path / "missing.pt"], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_an_averaged_checkpoint_packages_and_its_card_names_the_members(two_epochs, tiny_data, tmp_path):
    first, second = two_epochs
    soup = average_checkpoints([first, second], tmp_path / "soup.pt")
    build = build_package(
        soup,
        tmp_path / "pkg",
        load_dataset(tiny_data),
        PackageConfig(name="cxr-soup", format="fp32", **FAST_PACKAGE_SETTINGS),
    )
    meta = load_package_meta(build.package_dir)
    assert [m["sha256"] for m in meta.extra["averaged_from"]] == [file_sha256(first), file_sha256(second)]
    card = render_model_card(build.package_dir)
    assert "uniform average of 2 models" in card
    assert file_sha256(first) in card and file_sha256(second) in card


def test_a_package_can_be_packaged_anew_from_its_torch_weights(trained, tiny_data, tmp_path):
    """``ml_core export --checkpoint <package dir>``: same weights, today's exporter; the card says so."""
    result, _ = trained
    source = load_package_meta(result.package_dir)
    build = build_package(
        result.package_dir,
        tmp_path / "again",
        load_dataset(tiny_data),
        PackageConfig(name="cxr-again", version="2", format="fp32", **FAST_PACKAGE_SETTINGS),
    )
    meta = load_package_meta(build.package_dir)
    weights_sha = file_sha256(result.package_dir / source.torch_weights)
    assert meta.extra["repackaged_from"] == {
        "name": source.name,
        "version": source.version,
        "format": source.format,
        "torch_weights_sha256": weights_sha,
        "channels": 1,  # the source package's stem was folded already: nothing to fold again
    }
    assert meta.extra["stem_folded_from_channels"] == 3 and meta.preprocess.channels == 1
    assert file_sha256(build.package_dir / meta.torch_weights) == weights_sha  # the weights are unchanged
    assert meta.extra["initialisation"] == source.extra["initialisation"]
    assert meta.dataset_manifest_sha256 == source.dataset_manifest_sha256
    assert meta.metrics["test"]["macro_f1"] == pytest.approx(source.metrics["test"]["macro_f1"], abs=1e-6)
    card = render_model_card(build.package_dir)
    assert weights_sha in card and "unchanged, exported" in card and "trained on 3 replicated copies" in card
