"""Imported into a test worker with `celery worker --include stall_before_task`.

Every task waits here after the worker has taken it and before it runs, so a test can kill
the worker with the message in hand deterministically (no race with a fast machine).
The worker writes the task id to $STALL_MARKER first, so the test knows when to kill it.
"""

import os
import time
from pathlib import Path

from celery.signals import task_prerun


@task_prerun.connect
def _stall(task_id=None, **_kwargs) -> None:
    Path(os.environ["STALL_MARKER"]).write_text(str(task_id or ""))
    time.sleep(600)
