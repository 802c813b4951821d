"""Readiness names the broker when its Redis goes down, and recovers when Redis is back."""

import subprocess
import time

import pytest

pytestmark = [pytest.mark.services]


def _start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("private redis did not start")


def test_ready_fails_naming_the_broker_while_redis_is_down(client, champion, settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    redis = _start_redis(port)
    try:
        assert client.get("/health/ready").status_code == 200
        redis.terminate()
        redis.wait(timeout=10)
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["failed"] == ["broker"]
        assert response.json()["checks"]["database"] == "ok"
        redis = _start_redis(port)  # Redis restarting: readiness comes back by itself
        assert client.get("/health/ready").status_code == 200
    finally:
        redis.kill()
