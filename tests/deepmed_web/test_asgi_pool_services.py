"""The ASGI web process takes its PostgreSQL connections from a pool (deepmed_web/asgi.py): many
requests, some at once, are served by a few kept backends instead of a new backend each (which
was ~16% of the web process's CPU at 10 uploads/s), and a pooled connection that PostgreSQL
dropped is replaced before a request gets it."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

POOL_MAX_SIZE = 3


def _sessions_started() -> int:
    """Sessions PostgreSQL has started on the test database so far, once its counter is settled
    (a backend reports its start with its statistics, within about a second)."""
    previous = None
    for _ in range(20):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            count = cursor.fetchone()[0]
        if count == previous:
            return count
        previous = count
        time.sleep(1.5)
    raise AssertionError("pg_stat_database.sessions did not settle")


def _other_backends() -> list[int]:
    """PostgreSQL backends on the test database other than this test's own: the server's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def pooled_server(request, process_env):
    process_env["DEEPMED_DB_POOL_MAX_SIZE"] = str(POOL_MAX_SIZE)
    return request.getfixturevalue("live_server_process")


def _get_studies(base: str, auth: dict, count: int, concurrency: int) -> list[int]:
    """`count` authenticated API reads (each queries the database), `concurrency` at a time."""
    import httpx

    def one(_):
        return httpx.get(f"{base}/api/v1/studies", headers=auth, timeout=60).status_code

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def test_requests_reuse_a_bounded_set_of_pooled_database_connections(pooled_server, consenting_patient, bearer):
    auth = bearer(consenting_patient)
    assert _get_studies(pooled_server, auth, 2, 1) == [200, 200]  # the pool is open
    before = _sessions_started()

    statuses = _get_studies(pooled_server, auth, 40, 8)
    server_backends = _other_backends()

    assert statuses == [200] * 40
    new_sessions = _sessions_started() - before
    # Without the pool each request started (and ended) a backend of its own: 40 or more.
    assert new_sessions <= POOL_MAX_SIZE, f"{new_sessions} new PostgreSQL sessions for 40 requests"
    assert 1 <= len(server_backends) <= POOL_MAX_SIZE, server_backends  # kept open between requests


def test_a_pooled_connection_postgresql_dropped_is_replaced(pooled_server, consenting_patient, bearer):
    auth = bearer(consenting_patient)
    assert _get_studies(pooled_server, auth, 6, 3) == [200] * 6
    dropped = _other_backends()
    assert dropped, "the server keeps no pooled connection"
    with connection.cursor() as cursor:  # what a PostgreSQL restart or an idle-connection kill does
        for pid in dropped:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.5)

    assert _get_studies(pooled_server, auth, 10, 1) == [200] * 10  # checked before reuse, not handed out dead
    now = _other_backends()
    assert now and not set(now) & set(dropped)
    assert len(now) <= POOL_MAX_SIZE
