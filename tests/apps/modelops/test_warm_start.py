"""Training runs start from the champion's weights (warm start) or ImageNet weights, never from
scratch by default; what a run started from is decided when it is queued, shown in the console,
and recorded with the sha256 of the weights in the run and in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.modelops import services
from apps.modelops.models import RunStatus
from ml_core.package import file_sha256

pytestmark = [pytest.mark.django_db]

TINY = {"epochs": 1, "image_size": 64, "batch_size": 8}


def _queue(admin_user, capture, **kwargs):
    with capture(execute=False):
        return services.start_training_run(
            architecture="cxr_tiny", tier="quick", augmentation="none", actor=admin_user, overrides=TINY, **kwargs
        )


def test_champion_without_torch_weights_falls_back_and_says_why(
    modelops_settings, admin_user, champion, django_capture_on_commit_callbacks
):
    run = _queue(admin_user, django_capture_on_commit_callbacks)
    assert run.params["init"]["requested"] == "champion"  # DEEPMED_TRAINING_INIT's default
    assert run.params["init"]["kind"] == "random"  # cxr_tiny has no ImageNet weights either
    assert "carries no torch weights" in run.params["init"]["note"]
    assert "no ImageNet weights ship for cxr_tiny" in run.params["init"]["note"]


def test_imagenet_weights_when_the_champion_is_another_architecture(modelops_settings, champion):
    init = services.resolve_initialisation("champion", "tf_efficientnet_lite0")
    assert init["kind"] == "imagenet" and init["pretrained"] == "efficientnet-lite0"
    assert "is a cxr_tiny" in init["note"]
    assert services.resolve_initialisation("random", "tf_efficientnet_lite0")["kind"] == "random"
    with pytest.raises(ValueError):
        services.validate_training_params(
            architecture="cxr_tiny", tier="quick", augmentation="none", initialisation="from-the-hub"
        )


@pytest.mark.slow
def test_next_run_fine_tunes_the_promoted_champion(
    modelops_settings, admin_user, champion, client, django_capture_on_commit_callbacks
):
    from mlflow.tracking import MlflowClient

    first = services.execute_training_run(_queue(admin_user, django_capture_on_commit_callbacks).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error
    services.promote_version(first.result_version, actor=admin_user)
    trained = first.result_version

    warm = _queue(admin_user, django_capture_on_commit_callbacks)
    assert warm.params["init"] == {
        "requested": "champion",
        "kind": "champion",
        "pretrained": trained.package_uri,
        "label": f"{trained.registered_name} v{trained.version}",
        "note": "",
    }
    warm = services.execute_training_run(warm.pk)
    assert warm.status == RunStatus.SUCCEEDED, warm.error
    weights_sha = file_sha256(Path(trained.package_uri) / "torch_weights.pt")
    assert warm.params["init"]["started_kind"] == "warm_start"
    assert warm.params["init"]["started_sha256"] == weights_sha
    # Fine-tuning a trained model: its first epoch is already as good as the model it started from.
    assert warm.progress["history"][0]["val_macro_f1"] >= first.progress["history"][-1]["val_macro_f1"] - 0.05

    mlflow_run = MlflowClient(tracking_uri=modelops_settings.MLFLOW_TRACKING_URI).get_run(warm.mlflow_run_id)
    assert mlflow_run.data.params["init.kind"] == "warm_start"
    assert mlflow_run.data.params["init.sha256"] == weights_sha
    assert mlflow_run.data.params["train.lr"] == str(services.WARM_START_LR)
    # the average with the champion's weights was scored on validation; the better one was packaged
    averaged = warm.params["averaged_with_start"]
    assert averaged["kept"] == (averaged["val_macro_f1"] >= averaged["best_epoch_val_macro_f1"])
    assert mlflow_run.data.tags["average_with_start"] == ("kept" if averaged["kept"] else "not kept")
    assert mlflow_run.data.params["train.average_with_start"] == "True"

    client.force_login(admin_user)
    page = client.get(f"/modelops/runs/{warm.pk}/").content.decode()
    assert f"Initialisation: <strong>{trained.registered_name} v{trained.version}</strong>" in page
    assert weights_sha[:12] in page
    assert 'id="run-average"' in page and ("the average is packaged" in page) == averaged["kept"]
    console = client.get("/modelops/").content.decode()
    assert f"<td>{trained.registered_name} v{trained.version}</td>" in console


def test_training_threads_are_bounded_by_the_setting_unless_the_operator_overrides(settings):
    from apps.modelops.services.training import WARM_START_LR, train_config_overrides

    settings.DEEPMED_TRAINING_THREADS = 1  # embedded mode's default: training shares the cores with serving
    assert train_config_overrides({"init": {"kind": "champion"}}) == {
        "lr": WARM_START_LR,
        "average_with_start": True,
        "num_threads": 1,
    }
    assert train_config_overrides({"overrides": {"num_threads": 3, "epochs": 2}}) == {"num_threads": 3, "epochs": 2}
    settings.DEEPMED_TRAINING_THREADS = 0  # services mode: ml_core's own default
    assert train_config_overrides({"init": {"kind": "imagenet"}}) == {}
