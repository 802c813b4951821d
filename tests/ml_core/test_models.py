import numpy as np
import pytest
import torch

from ml_core.models import LogitsAndFeatures, ModelConfig, build_model, classifier_weights


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
