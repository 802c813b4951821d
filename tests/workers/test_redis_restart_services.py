"""Fault: Redis (broker, no persistence) restarts while studies are queued and being processed.
Queued task messages die with it; the stalled-study sweeper re-enqueues them, the worker
reconnects by itself, and every study ends with exactly one prediction: none lost."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DONE = ("predicted", "explaining", "explained")


def test_no_study_is_lost_when_redis_restarts_mid_run(
    request, private_redis, process_env, consenting_patient, champion, bearer, process_tools, flushed_redis
):
    import httpx

    from apps.studies.models import Study

    process_env["REDIS_URL"] = private_redis.url
    base = request.getfixturevalue("live_server_process")
    auth = bearer(consenting_patient)

    def upload(seed: int) -> str:
        from ml_core.testing import make_xray_like_png

        response = httpx.post(
            f"{base}/api/v1/studies",
            headers=auth,
            timeout=60,
            files={"image": (f"{seed}.png", make_xray_like_png(size=128, seed=seed), "image/png")},
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    before = [upload(seed) for seed in range(3)]  # published, waiting in Redis (no worker yet)
    request.getfixturevalue("celery_worker_process")()  # starts taking them...
    private_redis.restart()  # ...and Redis goes away with what it still held
    after = [upload(seed) for seed in range(3, 5)]  # uploads keep working once Redis is back

    # The periodic sweeper (beat: workers.maintenance.requeue_stalled_studies) re-enqueues
    # studies still `queued`; run it now rather than wait for its schedule.
    sweep = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from apps.studies.services import requeue_stalled_studies as r; print('requeued', r(older_than_seconds=0))",
        ],
        cwd=process_tools.root,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sweep.returncode == 0, sweep.stderr
    # The worker holds one message at a time (prefetch 1): the others died with Redis.
    requeued = int(sweep.stdout.split("requeued")[-1])
    assert requeued >= 1, sweep.stdout

    studies = before + after

    def all_done() -> bool:
        return Study.objects.filter(pk__in=studies, status__in=DONE).count() == len(studies)

    process_tools.wait_until(all_done, timeout=240, interval=1, what="every study predicted")
    for study in Study.objects.filter(pk__in=studies):
        assert study.predictions.count() == 1, study.pk  # re-enqueued twice at most, predicted once
