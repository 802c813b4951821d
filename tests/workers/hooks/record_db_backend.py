"""Imported into a test worker with `celery worker --include record_db_backend`.

After every task the worker appends the PostgreSQL backend pid of its database connection to
$DB_BACKEND_LOG, so a test can tell whether tasks reuse one connection or open one each.
"""

import os

from celery.signals import task_postrun


@task_postrun.connect
def _record_backend(**_kwargs) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(os.environ["DB_BACKEND_LOG"], "a") as log:
        log.write(f"{pid}\n")
