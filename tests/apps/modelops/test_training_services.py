"""Real services: a training run queued on Redis's `training` queue, executed by a separate
`celery worker -Q training` process on PostgreSQL, followed live over a WebSocket (channels-redis)."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.modelops.models import RunStatus, TrainingRun

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_training_worker_runs_the_job_and_the_console_sees_it_live(
    client, admin_user, modelops_settings, process_env, flushed_redis, live_server_process, celery_worker_process
):
    import websockets

    from apps.modelops import services

    process_env.update(
        MLFLOW_TRACKING_URI=modelops_settings.MLFLOW_TRACKING_URI,
        MLFLOW_ARTIFACT_ROOT=modelops_settings.MLFLOW_ARTIFACT_ROOT,
        DEEPMED_BASE_DATASET_DIR=str(modelops_settings.DEEPMED_BASE_DATASET_DIR),
        DEEPMED_MODEL_DIR=str(modelops_settings.DEEPMED_MODEL_DIR),
    )
    run = services.start_training_run(
        architecture="cxr_tiny",
        tier="quick",
        augmentation="none",
        actor=admin_user,
        overrides={"epochs": 2, "image_size": 64, "batch_size": 8, "num_threads": 1},
    )
    assert flushed_redis.llen("training") == 1  # on the training queue, nowhere else
    client.force_login(admin_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def follow() -> list[dict]:
        url = live_server_process.replace("http", "ws") + f"/ws/modelops/training/{run.pk}/"
        async with websockets.connect(url, additional_headers={"Cookie": cookie}, origin=live_server_process) as ws:
            seen = [json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["job"]]
            await asyncio.to_thread(celery_worker_process, "training")
            while not seen[-1]["finished"]:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=180))["job"])
            return seen

    updates = asyncio.run(follow())
    assert updates[0]["status"] == "queued" and updates[-1]["status"] == "succeeded", updates[-1]
    assert [len(u["progress"].get("history", [])) for u in updates if u["status"] == "running"][-1] == 2
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.mlflow_run_id and run.result_version.alias == "challenger"
    assert TrainingRun.objects.count() == 1
