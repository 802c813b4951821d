"""The ASGI server closes each request's database connection (on PostgreSQL: back to its pool);
Celery workers keep theirs."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")
django.setup()
from django.db import connections
before = connections["default"].settings_dict["CONN_MAX_AGE"]
import deepmed_web.asgi  # what Daphne (manage.py serve) loads
print(before, connections["default"].settings_dict["CONN_MAX_AGE"])
print("pool", (connections["default"].settings_dict.get("OPTIONS") or {}).get("pool"))
"""


def _probe(tmp_path, **env_overrides: str) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DEEPMED_DB_POOL_MAX_SIZE"},
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/not_connected_to",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "DB_CONN_MAX_AGE": "60",
        "DEEPMED_DATA_DIR": str(tmp_path),
        **env_overrides,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_asgi_application_does_not_keep_database_connections(tmp_path):
    """Django keeps an ASGI request's connection per request context, so a kept one was never
    reused and piled up until PostgreSQL refused new clients (services mode at 10 uploads/s)."""
    lines = _probe(tmp_path)
    assert lines[-2].split() == ["60", "0"], lines


def test_asgi_application_pools_postgresql_connections_only(tmp_path):
    """A process-wide pool (DEEPMED_DB_POOL_MAX_SIZE, 0: none) on PostgreSQL; SQLite has none."""
    assert _probe(tmp_path)[-1] == "pool {'min_size': 2, 'max_size': 10}"
    assert _probe(tmp_path, DEEPMED_DB_POOL_MAX_SIZE="4")[-1] == "pool {'min_size': 2, 'max_size': 4}"
    assert _probe(tmp_path, DEEPMED_DB_POOL_MAX_SIZE="0")[-1] == "pool None"
    sqlite = _probe(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert sqlite[-2].split()[-1] == "0" and sqlite[-1] == "pool None"
