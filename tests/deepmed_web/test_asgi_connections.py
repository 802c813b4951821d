"""The ASGI server closes each request's database connection; Celery workers keep theirs."""

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
"""


def test_asgi_application_does_not_keep_database_connections(tmp_path):
    """Django keeps an ASGI request's connection per request context, so a kept one was never
    reused and piled up until PostgreSQL refused new clients (services mode at 10 uploads/s)."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/not_connected_to",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "DB_CONN_MAX_AGE": "60",
        "DEEPMED_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["60", "0"], result.stdout
