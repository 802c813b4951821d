"""The one door from the apps to the Celery workers: tasks are published by name, so no app
imports `workers` (the tasks import the apps' services, never the other way round).

The names are the tasks' registered names (workers/<queue>.py); a test checks each one exists.
Background jobs (apps.jobs) publish their model's `task_name` through `enqueue` too.
"""

from __future__ import annotations

INFERENCE = "workers.inference.run_inference"
EXPLANATION = "workers.llm.generate_explanation"


def enqueue(name: str, *args, task_id: str | None = None) -> None:
    """Publish task `name` with `args` now (routed to its queue by deepmed_web.celery). No retry
    loop: a refusing broker raises, and the caller decides (log and let a sweeper retry, or fail
    the job)."""
    from deepmed_web.celery import app

    # ignore_result: no one waits for a task's return value (results are not stored either,
    # CELERY_TASK_IGNORE_RESULT), but send_task does not know that by the name alone and, with the
    # Redis result backend, subscribed to each task's result channel: a SUBSCRIBE on every upload
    # and every prediction (profiled in the web process), and subscriptions that never ended.
    app.send_task(name, args=list(args), task_id=task_id, retry=False, ignore_result=True)
