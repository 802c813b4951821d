"""Real services: a `celery worker` subprocess consuming from Redis, a live Daphne server,
and a WebSocket client receiving the study's status through channels-redis."""

import asyncio
import json
import os

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _session_cookie(client, user) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_worker_process_moves_the_study_and_websocket_sees_it(
    client, consenting_patient, champion, xray_png, flushed_redis, live_server_process, celery_worker_process
):
    """Upload (the task waits in Redis, no worker yet) → subscribe over a real WebSocket →
    start the worker → the client sees predicting and predicted through channels-redis."""
    import websockets
    from django.db import connection

    from apps.studies.models import StudyStatus
    from apps.studies.services import create_study

    assert connection.vendor == "postgresql"
    study = create_study(owner=consenting_patient, data=xray_png)
    assert flushed_redis.llen("inference") == 1  # published to the real broker
    cookie = _session_cookie(client, consenting_patient)

    async def follow() -> list[str]:
        url = live_server_process.replace("http", "ws") + f"/ws/studies/{study.pk}/"
        async with websockets.connect(url, additional_headers={"Cookie": cookie}, origin=live_server_process) as ws:
            seen = [json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["status"]]
            await asyncio.to_thread(celery_worker_process)
            while seen[-1] not in ("predicted", "failed"):
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=90))["status"])
            return seen

    statuses = asyncio.run(follow())
    assert statuses == ["queued", "predicting", "predicted"], statuses
    study.refresh_from_db()
    # The llm task (same worker) may already be explaining it.
    assert study.status in (StudyStatus.PREDICTED, StudyStatus.EXPLAINING, StudyStatus.EXPLAINED)
    assert study.predictions.get().model_version == champion
    assert flushed_redis.llen("inference") == 0


def test_websocket_refuses_another_patient(client, queued_study, other_patient, live_server_process):
    """Through Daphne: the handshake is accepted and closed with 4403 ("not yours"), which an app
    can tell from 4401 ("log in again"); a refused handshake would be a bare HTTP 403."""
    import websockets
    from websockets.exceptions import ConnectionClosed

    cookie = _session_cookie(client, other_patient)

    async def attempt():
        url = live_server_process.replace("http", "ws") + f"/ws/studies/{queued_study.pk}/"
        async with websockets.connect(url, additional_headers={"Cookie": cookie}, origin=live_server_process) as ws:
            await ws.recv()

    with pytest.raises(ConnectionClosed) as exc:
        asyncio.run(attempt())
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 4403


def test_a_worker_killed_mid_task_loses_nothing(
    consenting_patient, champion, xray_png, flushed_redis, celery_worker_process, process_env, process_tools, tmp_path
):
    """acks_late: SIGKILL the worker while it holds the task; the unacknowledged message
    goes back to Redis and the next worker finishes the study exactly once."""
    import signal
    import time
    from pathlib import Path

    from apps.studies.models import Study, StudyStatus
    from apps.studies.services import create_study

    process_env.update(CELERY_VISIBILITY_TIMEOUT="2", CELERY_RESTORE_THROTTLE="1")
    study = create_study(owner=consenting_patient, data=xray_png)
    marker = tmp_path / "stalled"
    hooks = str(Path(__file__).parent / "hooks")
    first = celery_worker_process(
        include="stall_before_task",
        extra_env={
            "STALL_MARKER": str(marker),
            "PYTHONPATH": os.pathsep.join(filter(None, [hooks, process_env.get("PYTHONPATH")])),
        },
    )
    process_tools.wait_until(marker.exists, timeout=60, what="first worker holds the task")
    first.kill(signal.SIGKILL)
    assert not Study.objects.get(pk=study.pk).predictions.exists()

    celery_worker_process()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = Study.objects.get(pk=study.pk).status
        if status in (StudyStatus.PREDICTED, StudyStatus.EXPLAINING, StudyStatus.EXPLAINED, StudyStatus.FAILED):
            break
        time.sleep(0.3)
    study.refresh_from_db()
    assert study.status in (StudyStatus.PREDICTED, StudyStatus.EXPLAINING, StudyStatus.EXPLAINED), study.status
    assert study.predictions.count() == 1


def _start_inference_worker_recording_db_backends(celery_worker_process, process_env, log) -> None:
    """An inference worker whose hook (hooks/record_db_backend.py) appends, after each task, the
    PostgreSQL backend pid that served it to ``log``."""
    from pathlib import Path

    hooks = str(Path(__file__).parent / "hooks")
    celery_worker_process(
        queues="inference",
        include="record_db_backend",
        extra_env={
            "DB_BACKEND_LOG": str(log),
            "PYTHONPATH": os.pathsep.join(filter(None, [hooks, process_env.get("PYTHONPATH")])),
        },
    )


def test_worker_reuses_its_database_connection_across_tasks(
    consenting_patient, champion, flushed_redis, celery_worker_process, process_env, tmp_path
):
    """Celery's Django fix-up closed every connection around every task, so CONN_MAX_AGE never
    applied in a worker: each inference task forked a new PostgreSQL backend (settings
    CELERY_DB_REUSE_MAX, workers._close_old_db_connections)."""
    import time

    from apps.studies.models import Study, StudyStatus
    from apps.studies.services import create_study
    from ml_core.testing import make_xray_like_png

    studies = [create_study(owner=consenting_patient, data=make_xray_like_png(size=256, seed=s)) for s in (11, 12, 13)]
    log = tmp_path / "backends"
    _start_inference_worker_recording_db_backends(celery_worker_process, process_env, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and len(log.read_text().split()) >= len(studies)):
        time.sleep(0.3)
    backends = log.read_text().split()
    assert len(backends) == len(studies), backends
    statuses = set(Study.objects.filter(pk__in=[s.pk for s in studies]).values_list("status", flat=True))
    assert statuses <= {StudyStatus.PREDICTED, StudyStatus.FAILED}, statuses
    assert len(set(backends)) == 1, f"a new database connection per task: backends {backends}"


def test_worker_recovers_when_its_kept_database_connection_is_killed(
    consenting_patient, champion, flushed_redis, celery_worker_process, process_env, tmp_path
):
    """A kept connection that PostgreSQL dropped between tasks (restart, idle kill) is found by
    the health check before the next task uses it: that task reconnects, the study is predicted."""
    import time

    from django.db import connection

    from apps.studies.models import Study, StudyStatus
    from apps.studies.services import create_study
    from ml_core.testing import make_xray_like_png

    log = tmp_path / "backends"
    _start_inference_worker_recording_db_backends(celery_worker_process, process_env, log)

    def run_one(seed: int) -> str:
        study = create_study(owner=consenting_patient, data=make_xray_like_png(size=256, seed=seed))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = Study.objects.get(pk=study.pk).status
            if status in (StudyStatus.PREDICTED, StudyStatus.FAILED) and log.exists() and log.read_text().split():
                return status
            time.sleep(0.2)
        raise AssertionError(f"study {study.pk} still {status}")

    finals = {StudyStatus.PREDICTED, StudyStatus.FAILED}
    assert run_one(21) in finals
    first_backend = log.read_text().split()[-1]
    with connection.cursor() as cursor:
        cursor.execute("select pg_terminate_backend(%s)", [int(first_backend)])
    log.write_text("")
    second = run_one(22)
    assert second in finals
    study = Study.objects.filter(owner=consenting_patient).order_by("-created_at").first()
    assert study.failure_code != "image_unreadable" and study.status == second
    assert log.read_text().split()[-1] != first_backend
