"""Readiness checks. Each returns None when healthy or a short reason string."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


def check_broker() -> str | None:
    if settings.EMBEDDED_MODE:
        return None  # in-memory transport lives in this process
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return None


def check_storage() -> str | None:
    name = default_storage.save(f"health/probe-{uuid.uuid4().hex}", ContentFile(b"ok"))
    default_storage.delete(name)
    return None


# Readiness answers quickly: one worker replying is enough, and none within this is "down".
WORKER_PING_TIMEOUT_S = 1.0


def check_worker() -> str | None:
    """A Celery ping broadcast; in embedded mode the in-process worker thread answers it."""
    from deepmed_web.celery import app

    with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)  # a broker outage fails fast, not after retries
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_S, limit=1, connection=conn)
    return None if replies else f"no Celery worker answered a ping within {WORKER_PING_TIMEOUT_S:g} s"


def check_model() -> str | None:
    from apps.modelops.selectors import get_champion

    return None if get_champion() is not None else "no model is deployed"


def check_warm() -> str | None:
    """Embedded mode: the in-process workers have loaded their models (DEEPMED_WARM_UP_WORKERS), so
    a study uploaded now does not wait seconds for a load. Always ok where no worker runs in this
    process (services mode's web tier: each worker process warms itself before it is busy)."""
    from deepmed_web.readiness import warming_up

    pending = warming_up()
    return None if not pending else f"warming up the workers of {', '.join(pending)}"


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
    "model": check_model,
    "worker": check_worker,
    "warm": check_warm,
}


def run_checks(*, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """name -> 'ok' or the failure reason, for every check not in `exclude`."""
    results = {}
    for name, check in CHECKS.items():
        if name in exclude:
            continue
        try:
            failure = check()
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"[:300]
        results[name] = "ok" if failure is None else failure
    return results
