"""Augmentation jobs: augmented copies of one class, progress recorded, on the augmentation queue."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from apps.modelops import selectors, services
from apps.modelops.models import AugmentationJob, RunStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "child-process"])
def test_augmentation_job_materialises_copies_with_progress(
    modelops_settings, admin_user, django_capture_on_commit_callbacks, in_child, caplog
):
    modelops_settings.DEEPMED_TRAINING_IN_CHILD_PROCESS = in_child  # embedded mode's default: a child
    caplog.set_level(logging.INFO, logger="ml_core.child_process")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.start_augmentation_job(label="COVID-19", target_count=20, intensity="medium", actor=admin_user)
    assert len(callbacks) == 1 and job.status == RunStatus.QUEUED
    done = services.execute_augmentation_job(job.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    written = sorted(Path(done.output_dir).glob("*.png"))
    assert len(written) == 16  # 8 training images x 2 copies reach the target of 20
    assert done.progress == {"done": 8, "total": 8}  # the child's progress, stored here
    assert any("materialise runs in child process" in r.getMessage() for r in caplog.records) == in_child
    assert services.execute_augmentation_job(job.pk) is None  # a re-delivered task does nothing
    # The next training run includes them (train split), named in its dataset manifest.
    dataset, rows = services.training_dataset([])
    augmented = [r for r in rows if r["source"] == f"augmentation_job:{job.pk}"]
    assert len(augmented) == 16 and {r["split"] for r in augmented} == {"train"}
    assert dataset.class_counts("train")["COVID-19"] == 8 + 16
    assert selectors.dataset_preview()["class_counts"]["COVID-19"] == 8 + 16


def test_unknown_class_or_level_is_refused(modelops_settings):
    with pytest.raises(ValueError):
        services.start_augmentation_job(label="ASTHMA", target_count=5)
    with pytest.raises(ValueError):
        services.start_augmentation_job(label="NORMAL", target_count=5, intensity="none")
    assert not AugmentationJob.objects.exists()
