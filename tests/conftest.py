"""Shared fixtures. Images and model packages are generated here; no test needs the real dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ml_core.serve import PredictionResult

SERVICES = os.environ.get("DEEPMED_TEST_SERVICES") == "1"
DATASET_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr"
# The tabular lab's dataset tests need ../shared/data/tabular instead and skip themselves.
TABULAR_TESTS = Path(__file__).resolve().parent / "ml_core" / "tabular"


def pytest_collection_modifyitems(config, items):
    _check_services_naming(items)
    skip_services = pytest.mark.skip(
        reason="needs real PostgreSQL + Redis: run via deploy/test.sh (DEEPMED_TEST_SERVICES=1)"
    )
    skip_dataset = pytest.mark.skip(reason=f"needs the chest X-ray set at {DATASET_DIR}, which is absent")
    for item in items:
        if "services" in item.keywords and not SERVICES:
            item.add_marker(skip_services)
        if "dataset" in item.keywords and not DATASET_DIR.is_dir() and TABULAR_TESTS not in item.path.parents:
            item.add_marker(skip_dataset)


def _check_services_naming(items) -> None:
    """The naming rule: a test module named `*_services.py` holds only tests of the real-services
    pass (marked `services`), and every such test is in one. Tests of an app's services.py are in
    `test_service_functions.py` (embedded pass)."""
    misnamed = sorted(
        {
            f"{item.path.relative_to(item.config.rootpath)}"
            for item in items
            if item.path.name.endswith("_services.py") != (item.get_closest_marker("services") is not None)
        }
    )
    if misnamed:
        raise pytest.UsageError(
            "a *_services.py test module must hold only tests marked `services` (real PostgreSQL + Redis), "
            f"and every such test must be in one: {', '.join(misnamed)}"
        )


@pytest.fixture(scope="session", autouse=True)
def _celery_configured_from_real_settings():
    """Celery builds its broker connection pool from settings on first use and keeps it: build it
    now, from the real settings (a test that needs another broker uses `celery_broker`)."""
    from deepmed_web.celery import app

    assert app.amqp.producer_pool.connections.connection.as_uri()


@pytest.fixture
def celery_broker(settings, monkeypatch):
    """celery_broker(url): this process's Celery app (publishing, pings) talks to `url` until the
    test ends; then the session's pools come back, so no later test publishes to a stale broker."""
    from deepmed_web.celery import app

    def point(url: str) -> None:
        # app.conf reads through to Django's settings: patch it first, so the value it restores
        # at the end is the real one, not `url`.
        monkeypatch.setitem(app.conf, "broker_url", url)
        settings.CELERY_BROKER_URL = url
        monkeypatch.setattr(app, "_pool", None)
        monkeypatch.setattr(app.amqp, "_producer_pool", None)

    return point


@pytest.fixture
def published():
    """Task messages this process sent to the broker: [{task, id, queue, args}] (Celery's
    after_task_publish, so what really went out, routed)."""
    from celery.signals import after_task_publish

    sent: list[dict] = []

    def record(sender=None, headers=None, body=None, routing_key=None, **kwargs):
        sent.append({"task": sender, "id": headers["id"], "queue": routing_key, "args": list(body[0])})

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)


@pytest.fixture
def minutes_ago():
    """minutes_ago(n) -> the aware datetime n minutes before now (to age a row's timestamps)."""
    from datetime import timedelta

    from django.utils import timezone

    return lambda minutes: timezone.now() - timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def _fresh_throttle_counters(settings):
    """API rate-limit counters live in the cache and tests reuse user ids and 127.0.0.1:
    start each test with none (only the throttle keys are dropped; Redis may hold a queue)."""
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()
    else:
        import redis

        client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
        keys = list(client.scan_iter(match="*throttle_*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Each test writes uploads to its own folder (services tests override with a shared one)."""
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**settings.STORAGES["default"], "OPTIONS": {"location": str(media), "base_url": None}},
        }
    return media


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_worker_warm_up(settings):
    """In-process workers start and stop inside single tests: a warm-up thread loading models and
    reading the database would outlive them (tests/workers/test_warm_up.py turns it back on)."""
    settings.DEEPMED_WARM_UP_WORKERS = False


@pytest.fixture(autouse=True)
def _llm_in_process(settings):
    """Explanations generate in the test process: a child process per test would cost seconds
    (tests/ml_core/llm/test_process_engine.py and the tests that turn it back on start one)."""
    settings.DEEPMED_LLM_IN_CHILD_PROCESS = False


@pytest.fixture(autouse=True)
def _training_in_process(settings):
    """Training jobs compute in the test process, for the same reason (tests/ml_core/test_child_process.py
    and the tests that turn it back on spawn children)."""
    settings.DEEPMED_TRAINING_IN_CHILD_PROCESS = False


# Users and studies come from tests/factories.py (factory_boy); these are the named ones most
# tests share (alice and bob are patients, dr-house a physician, root-admin an admin).


@pytest.fixture
def patient(db):
    from tests.factories import PatientFactory

    return PatientFactory(username="alice", consented=False)


@pytest.fixture
def other_patient(db):
    from tests.factories import PatientFactory

    return PatientFactory(username="bob", consented=False)


@pytest.fixture
def physician(db):
    from tests.factories import PhysicianFactory

    return PhysicianFactory(username="dr-house")


@pytest.fixture
def admin_user(db):
    from tests.factories import AdminFactory

    return AdminFactory(username="root-admin")


@pytest.fixture
def consenting_patient(patient):
    from apps.accounts.services import accept_disclaimer

    accept_disclaimer(patient, ip_address="127.0.0.1")
    return patient


@pytest.fixture
def api_client():
    """DRF's test client (JSON by default; `format="multipart"` for uploads)."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(scope="session")
def access_token():
    """access_token(user, expired=False) -> a real JWT access token for `user` (expired an hour ago
    when asked)."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework_simplejwt.tokens import AccessToken

    def make(user, *, expired: bool = False) -> str:
        token = AccessToken.for_user(user)
        if expired:
            token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=5))
        return str(token)

    return make


@pytest.fixture
def api_as(api_client, access_token):
    """api_as(user) -> the API client carrying a real JWT access token for `user` (None: anonymous)."""

    def login(user):
        if user is None:
            api_client.credentials()
        else:
            api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
        return api_client

    return login


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory) -> Path:
    """A tiny RANDOM-WEIGHT model package: exercises the real ONNX serving path, predicts nothing
    meaningful (the ml_core tests' too: tiny_package_ood is the one with an OOD detector)."""
    from ml_core.testing import make_tiny_package

    return make_tiny_package(tmp_path_factory.mktemp("model") / "cxr-tiny")


@pytest.fixture
def champion(db, tiny_package):
    from apps.modelops.services import register_model_version

    return register_model_version(tiny_package, alias="champion")


@pytest.fixture(scope="session")
def tiny_llm_checkpoint(tmp_path_factory) -> Path:
    """A RANDOM-WEIGHT 2-layer litgpt checkpoint (tokenizer trained on a few sentences): it loads
    and generates, and what it writes never passes the explanation validator."""
    from ml_core.llm.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("llm") / "tiny-gpt")


@pytest.fixture(scope="session")
def memorizing_llm_checkpoint(tmp_path_factory) -> Path:
    """A tiny litgpt checkpoint trained (~100 steps) to write the valid explanation of
    ml_core.llm.testing.sample_facts(): the generation path can be tested to a pass."""
    from ml_core.llm.testing import make_memorizing_checkpoint

    return make_memorizing_checkpoint(tmp_path_factory.mktemp("llm-mem") / "memorizing-gpt")


@pytest.fixture(scope="session")
def xray_png() -> bytes:
    from ml_core.testing import make_xray_like_png

    return make_xray_like_png(size=256, seed=1)


@pytest.fixture
def queued_study(consenting_patient, xray_png, django_capture_on_commit_callbacks):
    """A study created through the real intake service; the inference task is not run."""
    from apps.studies.services import create_study

    with django_capture_on_commit_callbacks(execute=False):
        return create_study(owner=consenting_patient, data=xray_png)


# --- the consenting patient's study at each point of its life, through the real services ----
# (one study per test, the same object under each name; for more studies, or other owners and
# results, use tests.factories.StudyFactory). The model result is chosen by the test, so
# probabilities and confidence are known.


def make_result(probabilities: dict[str, float], *, heatmap: bool = True, ood: bool = False) -> PredictionResult:
    import numpy as np

    from ml_core.imaging import encode_png
    from ml_core.serve import PredictionResult

    label = max(probabilities, key=probabilities.get)
    overlay = np.zeros((64, 64, 4), dtype=np.uint8)
    overlay[16:48, 16:48] = (255, 0, 0, 160)
    return PredictionResult(
        label=label,
        probabilities=probabilities,
        confidence=probabilities[label],
        latency_ms=12.5,
        heatmap_png=encode_png(overlay) if heatmap else None,
        is_out_of_distribution=ood,
        model_name="cxr-test",
        model_version="7",
    )


@pytest.fixture
def prediction_result():
    """prediction_result(probabilities=None, heatmap=True, ood=False) -> a model result chosen by the test."""

    def make(probabilities=None, **kwargs) -> PredictionResult:
        return make_result(probabilities or {"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80}, **kwargs)

    return make


@pytest.fixture
def predict(champion, prediction_result):
    """predict(study, probabilities) -> the study after the real record_prediction service."""

    def run(study, probabilities=None, **kwargs):
        from apps.studies.services import record_prediction, start_prediction

        start_prediction(study.pk)
        record_prediction(study, model_version=champion, result=prediction_result(probabilities, **kwargs))
        study.refresh_from_db()
        return study

    return run


@pytest.fixture
def predicted_study(queued_study, predict):
    return predict(queued_study)


@pytest.fixture
def explained_study(predicted_study):
    """predicted_study with ExplanationFactory's fixed text (no engine ran)."""
    from apps.studies.models import StudyStatus
    from apps.studies.services import transition_study
    from tests.factories import ExplanationFactory

    transition_study(predicted_study, StudyStatus.EXPLAINING)
    ExplanationFactory(study=predicted_study)
    return transition_study(predicted_study, StudyStatus.EXPLAINED)


@pytest.fixture
def reviewed_study(explained_study, physician):
    """explained_study corrected to NORMAL by `physician` (ReviewFactory)."""
    from apps.studies.models import StudyStatus
    from apps.studies.services import transition_study
    from tests.factories import ReviewFactory

    ReviewFactory(study=explained_study, physician=physician)
    return transition_study(explained_study, StudyStatus.REVIEWED)


@pytest.fixture
def embedded_worker_thread(settings):
    """The embedded mode's in-process Celery worker for one (transaction=True) test, stopped at
    its end so it consumes no task that a later test publishes."""
    if not settings.EMBEDDED_MODE:
        pytest.skip("embedded mode only")
    from deepmed_web.embedded import start_embedded_worker, stop_embedded_worker

    start_embedded_worker(periodic_tasks=False)
    yield
    stop_embedded_worker()


@pytest.fixture
def study_settled():
    """study_settled(study, timeout) -> the study, re-read once it is explained or failed (the
    whole pipeline ran: nothing writes to it after the test)."""
    import time

    from apps.studies.models import StudyStatus

    def wait(study, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            study.refresh_from_db()
            if study.status in (StudyStatus.EXPLAINED, StudyStatus.FAILED):
                break
            time.sleep(0.2)
        return study

    return wait


# --- real processes (services pass) -----------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def process_env(settings, _isolated_media):
    """Environment for a subprocess that must see this test's database, Redis and media."""
    from django.db import connection

    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        MEDIA_ROOT=str(_isolated_media),
        DJANGO_SETTINGS_MODULE="deepmed_web.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


class ManagedProcess:
    def __init__(self, args, env, log_path: Path):
        import subprocess

        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - the child process writes it until stop()
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self, sig=None) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def process_tools():
    """The helpers above for session-scoped fixtures in other conftest files (which cannot
    import this module under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        ManagedProcess=ManagedProcess,
        wait_until=wait_until,
        free_port=free_port,
        root=ROOT,
        start_embedded_server=start_embedded_server,
        embedded_env=embedded_env,
    )


@pytest.fixture
def start_process(tmp_path):
    started: list[ManagedProcess] = []

    def start(name: str, args: list[str], env: dict) -> ManagedProcess:
        process = ManagedProcess(args, env, tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def celery_worker_process(start_process, process_env):
    """A real `celery worker` subprocess consuming every queue from Redis."""
    import sys

    workers: list[ManagedProcess] = []

    def start(
        queues: str = "default,inference,llm,training,augmentation", include: str = "", extra_env: dict | None = None
    ) -> ManagedProcess:
        """`include`: extra modules the worker imports (test hooks under tests/workers/hooks)."""
        env = {**process_env, **(extra_env or {})}
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "deepmed_web",
            "worker",
            "-Q",
            queues,
            "-P",
            "solo",
            "-c",
            "1",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
            "-n",
            f"test-{os.getpid()}-{len(workers)}@localhost",
        ]
        if include:
            args += ["--include", include]
        worker = start_process(f"celery-worker-{len(workers)}", args, env)
        workers.append(worker)
        wait_until(
            lambda: "ready." in worker.log() or worker.proc.poll() is not None, timeout=90, what="celery worker ready"
        )
        assert worker.proc.poll() is None, worker.log()
        return worker

    return start


def wait_for_server(server: ManagedProcess, base: str, *, timeout: float = 120) -> None:
    """Until `base`/health/live answers (fails at once, with its log, if the process died)."""
    import urllib.request

    def up() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(server.log())
        try:
            return urllib.request.urlopen(f"{base}/health/live", timeout=2).status == 200
        except OSError:
            return False

    wait_until(up, timeout=timeout, what=f"server at {base}")


def embedded_env(data_dir: Path, **extra: str) -> dict:
    """Environment for a subprocess in embedded mode (SQLite, in-process worker) in `data_dir`."""
    drop = (
        "REDIS_URL",
        "DATABASE_URL",
        "MEDIA_ROOT",
        "AZURE_STORAGE_CONNECTION_STRING",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ARTIFACT_ROOT",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k not in drop}
    env.update(
        DEEPMED_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="deepmed_web.settings",
        PYTHONUNBUFFERED="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DEEPMED_LLM_ENABLED="false",
        **extra,
    )
    return env


def start_embedded_server(data_dir: Path, *, setup: list[list[str]] = (), **extra_env: str):
    """`manage.py migrate`, then each `manage.py <setup command>`, then `manage.py serve` (Daphne
    with its in-process Celery worker) on a free port, all in embedded mode in `data_dir`.
    Returns (ManagedProcess, base URL); the caller kills the process."""
    import subprocess
    import sys

    env = embedded_env(data_dir, **extra_env)
    for args in [["migrate", "--noinput"], *setup]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    server = ManagedProcess([sys.executable, "manage.py", "serve", "--port", str(port)], env, data_dir / "server.log")
    base = f"http://127.0.0.1:{port}"
    wait_for_server(server, base)
    return server, base


@pytest.fixture
def live_server_process(start_process, process_env):
    """`manage.py serve` (Daphne: HTTP + WebSockets) as a subprocess; returns its base URL."""
    import sys

    port = free_port()
    server = start_process(
        "daphne", [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)], process_env
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_server(server, base, timeout=90)
    return base


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence (like
    deploy/services.sh's): stopping it loses what it held."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = None

    def _ping(self) -> bool:
        import subprocess

        return subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode == 0

    def start(self) -> PrivateRedis:
        import subprocess

        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, timeout=10, interval=0.1, what="private redis")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis():
    """A started PrivateRedis (stop/start/restart it to simulate an outage)."""
    server = PrivateRedis(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def bearer(access_token):
    """`bearer(user)` -> an Authorization header with a JWT for `user`, for requests to a
    server subprocess (which shares the signing key through DEEPMED_DATA_DIR but not the
    tests' fast password hasher)."""
    return lambda user: {"Authorization": f"Bearer {access_token(user)}"}


@pytest.fixture
def flushed_redis(settings):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    return client
