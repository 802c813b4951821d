"""apps.core.tasks.enqueue: the one door to the Celery queues."""

from apps.core import tasks


def test_a_published_task_waits_for_no_result(monkeypatch):
    """Nothing reads a task's return value: the producer neither subscribes to the result backend
    (with Redis: a SUBSCRIBE per task, never ended) nor asks the worker to store it."""
    from deepmed_web.celery import app

    subscribed, published = [], []
    monkeypatch.setattr(app.backend, "on_task_call", lambda producer, task_id: subscribed.append(task_id))
    monkeypatch.setattr(
        app.amqp, "send_task_message", lambda producer, name, message, **kwargs: published.append(message)
    )
    tasks.enqueue(tasks.INFERENCE, "a-study-id", task_id="t-1")
    assert subscribed == [] and len(published) == 1
    headers = published[0].headers
    assert (headers["task"], headers["id"], headers["ignore_result"]) == (tasks.INFERENCE, "t-1", True)
