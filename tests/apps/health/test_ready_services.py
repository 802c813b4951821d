"""Readiness against real services: the broker and the workers are named while their Redis is
down, and readiness recovers by itself once Redis is back and the worker has reconnected."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _ready(client):
    response = client.get("/health/ready")
    return response.status_code, response.json()


def test_ready_names_broker_and_worker_through_a_redis_restart(
    client, champion, celery_broker, private_redis, process_env, celery_worker_process, process_tools
):
    celery_broker(private_redis.url)
    status, body = _ready(client)
    assert (status, body["failed"]) == (503, ["worker"])  # Redis is up, nobody consumes from it yet

    process_env["REDIS_URL"] = private_redis.url
    celery_worker_process()
    assert _ready(client)[0] == 200

    private_redis.stop()
    status, body = _ready(client)
    assert status == 503 and body["failed"] == ["broker", "worker"]
    assert body["checks"]["database"] == "ok"

    private_redis.start()  # Redis restarting: the worker reconnects and readiness comes back by itself
    process_tools.wait_until(lambda: _ready(client)[0] == 200, timeout=60, interval=1, what="ready again")
