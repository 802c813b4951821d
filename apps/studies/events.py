"""Study status events pushed to browsers and apps over Channels.

Groups: one per study (`study.<id>`) and one per owner (`user.<id>`); clinical staff
also follow `worklist`. Publishing never breaks the caller: a missing channel layer
(Redis restarting) is logged and clients fall back to polling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from apps.studies.selectors import MAY_HAVE_REVIEW, patient_status

logger = logging.getLogger(__name__)

WORKLIST_GROUP = "worklist"


def study_group(study_id) -> str:
    return f"study.{study_id}"


def user_group(user_id) -> str:
    return f"user.{user_id}"


def study_status_payload(study) -> dict:
    return {
        "study_id": str(study.id),
        "status": study.status,
        "status_display": study.get_status_display(),
        "status_text": patient_status(study),  # the patient's wording ("Awaiting physician review")
        "failure_code": study.failure_code,
        "failure_reason": study.failure_reason,
        "updated_at": study.updated_at.isoformat() if study.updated_at else None,
        # A physician's correction keeps the status `reviewed`: the version tells pages to reload.
        "review_version": review_version(study),
    }


def review_version(study) -> int | None:
    """The version of the study's review in force, None before the first. Only a `reviewed`
    study has one (selectors.MAY_HAVE_REVIEW), so the events of every other status, the
    inference path's included, need no query."""
    if study.status not in MAY_HAVE_REVIEW:
        return None
    return study.reviews.order_by("-version").values_list("version", flat=True).first()


def publish_study_status(study) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "study.status", **study_status_payload(study)}
    groups = (study_group(study.id), user_group(study.owner_id), WORKLIST_GROUP)
    try:
        # One trip into the event loop for the three groups: each trip costs a thread hand-off
        # (profiled: most of the per-study cost of publishing).
        run_on_event_loop(_send_to_groups(layer, groups, message))
    except Exception:
        logger.warning("could not publish status of study %s", study.id, exc_info=True)


async def _send_to_groups(layer, groups, message) -> None:
    # The groups at once: channels-redis makes two to four Redis round trips per group_send, and
    # the caller waits (a worker's solo pool with it, twice a study): one after another they added
    # up to ~3 ms a publish.
    await asyncio.gather(*(layer.group_send(group, message) for group in groups))


PUBLISH_TIMEOUT_S = 10.0
_publisher: dict = {}  # pid -> this process's publisher event loop (see _publisher_loop)
_publisher_lock = threading.Lock()


def run_on_event_loop(coro):
    """Run `coro` to completion from synchronous code and return its result.

    Under the server (a sync view run by sync_to_async), on the server's own loop, as
    async_to_sync does. Elsewhere (a Celery worker's task, a management command), on this
    process's one long-lived publisher loop: async_to_sync would make a new event loop and
    thread per call, and channels-redis keeps its Redis connections per loop, so every publish
    opened new connections (profiled in services mode: ~16 ms a publish, two per study, a third
    of an inference task's time)."""
    if _server_loop() is not None:
        return async_to_sync(_await)(coro)
    future = asyncio.run_coroutine_threadsafe(coro, _publisher_loop())
    try:
        return future.result(PUBLISH_TIMEOUT_S)
    except TimeoutError:
        future.cancel()
        raise


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this thread was called from through sync_to_async (asgiref's own
    test in async_to_sync), or None."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


async def _await(coro):
    return await coro


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's publisher loop, in a daemon thread started at first use (a forked child
    starts its own: a loop's thread does not survive fork)."""
    pid = os.getpid()
    with _publisher_lock:
        loop = _publisher.get(pid)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="deepmed-publisher", daemon=True).start()
            _publisher.clear()
            _publisher[pid] = loop
        return loop
