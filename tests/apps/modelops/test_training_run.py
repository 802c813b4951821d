"""A real training run end to end (tiny data, cxr_tiny, 2 epochs) against a real MLflow store:
progress, MLflow run with params/metrics/dataset manifest (incl. physician labels), registry
version mirrored as challenger, then re-sync from MLflow."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from apps.modelops import selectors, services
from apps.modelops.models import Alias, ModelVersion, RunStatus, TrainingRun
from ml_core.testing import make_xray_like_png
from tests.factories import LabeledSampleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TINY = {"epochs": 2, "image_size": 64, "batch_size": 8}


def _start(admin_user, django_capture_on_commit_callbacks) -> TrainingRun:
    with django_capture_on_commit_callbacks(execute=False):
        return services.start_training_run(
            architecture="cxr_tiny", tier="quick", augmentation="light", actor=admin_user, overrides=TINY
        )


def test_training_run_is_tracked_registered_and_mirrored(
    modelops_settings, admin_user, champion, django_capture_on_commit_callbacks, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from ml_core import evaluate, tracking
    from workers.training import run_training

    real_evaluate = evaluate.evaluate_package
    scored = []
    monkeypatch.setattr(evaluate, "evaluate_package", lambda *a, **k: scored.append(a[0]) or real_evaluate(*a, **k))

    labelled = LabeledSampleFactory(label="PNEUMONIA", image__data=make_xray_like_png(64, seed=1))
    withdrawn = LabeledSampleFactory(label="NORMAL", image__data=make_xray_like_png(64, seed=2))
    withdrawn.excluded = True
    withdrawn.save()
    run = _start(admin_user, django_capture_on_commit_callbacks)
    assert run.dataset_summary["new_physician_labels"] == 1

    assert run_training(run.pk) == "succeeded"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error + run.logs
    assert [h["epoch"] for h in run.progress["history"]] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(run.progress["history"][-1])
    assert list(run.samples.all()) == [labelled]  # used: leaves the retraining queue
    assert selectors.retraining_queue()["new_labels"] == 0

    client = MlflowClient(tracking_uri=modelops_settings.MLFLOW_TRACKING_URI)
    mlflow_run = client.get_run(run.mlflow_run_id)
    assert mlflow_run.data.params["architecture"] == "cxr_tiny" and mlflow_run.data.params["tier"] == "quick"
    assert [m.step for m in client.get_metric_history(run.mlflow_run_id, "val_loss")] == [1, 2]
    local = Path(
        client.download_artifacts(run.mlflow_run_id, "dataset/dataset_manifest.csv", str(modelops_settings.DATA_DIR))
    )
    rows = list(csv.DictReader(local.open()))
    physician_rows = [r for r in rows if r["source"] == "physician_review"]
    assert [(r["label"], r["sample_id"]) for r in physician_rows] == [("PNEUMONIA", str(labelled.pk))]
    assert not any(r["split"] == "test" for r in rows)  # the held-out set never trains
    assert {a.path for a in client.list_artifacts(run.mlflow_run_id, "plots")} >= {"plots/roc.png"}

    version = run.result_version
    assert version.alias == Alias.CHALLENGER and version.mlflow_run_id == run.mlflow_run_id
    assert (
        tracking.get_alias_version(modelops_settings.MLFLOW_TRACKING_URI, version.registered_name, "challenger")
        == version.version
    )
    assert services.load_predictor(version).meta.version == version.version
    assert version.evaluation["n"] == 12
    assert len(scored) == 1  # MLflow's test metrics and the gates share one held-out scoring

    # Promotion moves the alias in MLflow and the mirror; the next inference uses the new version.
    uri = modelops_settings.MLFLOW_TRACKING_URI
    services.promote_version(version, actor=admin_user)
    assert tracking.get_alias_version(uri, version.registered_name, "champion") == version.version
    assert selectors.get_champion() == version
    assert services.choose_serving_versions("any")[0] == version
    services.rollback_champion(actor=admin_user)  # back to the hand-registered starter
    assert selectors.get_champion() == champion
    assert tracking.get_alias_version(uri, version.registered_name, "champion") is None

    # The mirror is re-synced from MLflow: an alias moved there by hand and a drifted row are fixed.
    tracking.set_alias(uri, version.registered_name, version.version, "champion")
    ModelVersion.objects.filter(pk=version.pk).update(alias="", mlflow_run_id="")
    synced = services.sync_registry()
    assert [(v.version, v.alias) for v in synced] == [(version.version, Alias.CHAMPION)]
    champion.refresh_from_db()
    assert champion.alias == Alias.ARCHIVED and selectors.get_champion() == synced[0]
    assert synced[0].mlflow_run_id == run.mlflow_run_id


def test_cancelled_run_stops_and_failed_run_keeps_its_error(
    modelops_settings, admin_user, django_capture_on_commit_callbacks
):
    run = _start(admin_user, django_capture_on_commit_callbacks)
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)  # as if clicked right after it began
    assert services.execute_training_run(run.pk).status == RunStatus.CANCELLED

    modelops_settings.DEEPMED_BASE_DATASET_DIR = modelops_settings.DATA_DIR / "missing"
    failing = _start(admin_user, django_capture_on_commit_callbacks)
    failed = services.execute_training_run(failing.pk)
    assert failed.status == RunStatus.FAILED
    assert "FileNotFoundError" in failed.error and "Traceback" in failed.logs
    assert services.execute_training_run(failing.pk) is None  # a re-delivered task does not run it again


def test_automatic_run_is_promoted_only_when_configured(
    modelops_settings, champion, django_capture_on_commit_callbacks
):
    from apps.modelops.models import Trigger

    modelops_settings.DEEPMED_RETRAIN_AUTO_PROMOTE = True
    with django_capture_on_commit_callbacks(execute=False):
        run = services.start_training_run(
            architecture="cxr_tiny",
            tier="quick",
            augmentation="none",
            trigger=Trigger.NEW_LABELS,
            reason="test",
            overrides=TINY,
        )
    run = services.execute_training_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert selectors.get_champion() == run.result_version  # gates passed (lenient here), so promoted
    assert run.result_version.promotions.get().previous == champion
