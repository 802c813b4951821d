import numpy as np
import pytest
import torch

from ml_core.models import LogitsAndFeatures, ModelConfig, build_model, classifier_weights, fold_grey_stem


@pytest.mark.parametrize("architecture", ["cxr_tiny", "efficientnet_b0"])
def test_model_has_spatial_features_and_linear_head(architecture):
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=architecture, num_classes=3)).eval()
    with torch.no_grad():
        logits, features = LogitsAndFeatures(model)(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3)
    assert features.ndim == 4 and features.shape[0] == 2
    weights = classifier_weights(model)
    assert weights.shape == (3, features.shape[1])


def test_cam_decomposition_is_exact():
    # GAP + linear head: logit_k = w_k . mean(F) + b_k, which is what makes the served CAM faithful.
    torch.manual_seed(1)
    model = build_model(ModelConfig(architecture="cxr_tiny", num_classes=4)).eval()
    with torch.no_grad():
        logits, features = LogitsAndFeatures(model)(torch.randn(3, 3, 64, 64))
    bias = model.get_classifier().bias.detach().numpy()
    recon = features.numpy().mean(axis=(2, 3)) @ classifier_weights(model).T + bias
    np.testing.assert_allclose(recon, logits.numpy(), atol=1e-5)


def test_pretrained_without_local_weights_is_refused():
    with pytest.raises(ValueError, match="pretrained_path"):
        build_model(ModelConfig(architecture="efficientnet_b0", pretrained=True))
    assert ModelConfig.from_dict(ModelConfig(num_classes=5).to_dict()).num_classes == 5


@pytest.mark.parametrize("architecture", ["cxr_tiny", "tf_efficientnet_lite0"])
def test_folded_grey_stem_computes_what_the_three_replicated_channels_did(architecture):
    torch.manual_seed(2)
    cfg = ModelConfig(architecture=architecture, num_classes=3)
    model = build_model(cfg).eval()
    folded, folded_cfg = fold_grey_stem(model, cfg)
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected, got = LogitsAndFeatures(model)(grey.expand(-1, 3, -1, -1)), LogitsAndFeatures(folded)(grey)
    assert (cfg.in_chans, folded_cfg.in_chans, folded.training) == (3, 1, False)
    assert float(expected[0].abs().max()) > 0.01  # real outputs, not a pair of zeros
    for want, have in zip(expected, got):  # logits and the feature map (CAM, OOD)
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)
    stems = [
        (k, v) for k, v in folded.state_dict().items() if v.ndim == 4 and v.shape[1] == 1 and k in model.state_dict()
    ]
    key, stem = next((k, v) for k, v in stems if model.state_dict()[k].shape[1] == 3)
    torch.testing.assert_close(stem, model.state_dict()[key].sum(dim=1, keepdim=True))


def test_folding_a_folded_stem_changes_nothing_and_other_stems_are_refused():
    cfg = ModelConfig(architecture="cxr_tiny", num_classes=3, in_chans=1)
    model = build_model(cfg)
    assert fold_grey_stem(model, cfg) == (model, cfg)
    with pytest.raises(ValueError, match="2 channels"):
        fold_grey_stem(build_model(ModelConfig(architecture="cxr_tiny", in_chans=2)), ModelConfig(in_chans=2))
