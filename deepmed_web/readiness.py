"""What this process is still loading before it serves at full speed: the queues whose workers'
warm-up (workers/__init__.py) has not finished. The workers report here and the `warm` readiness
check (apps/health/checks.py) reads it, so the apps need not import the workers."""

from __future__ import annotations

import threading
from collections.abc import Iterable

WARMED_QUEUES = ("inference", "llm")  # the queues whose tasks have something to load before their first message
_pending: set[str] = set()
_lock = threading.Lock()


def expect_warm_up(queues: Iterable[str]) -> None:
    """Mark ``queues`` as warming up until ``warm_up_done`` is called for them."""
    with _lock:
        _pending.update(set(queues) & set(WARMED_QUEUES))


def warm_up_done(queues: Iterable[str]) -> None:
    with _lock:
        _pending.difference_update(queues)


def warming_up() -> list[str]:
    """The queues of this process still warming up (empty once warm, and where no warm-up runs)."""
    with _lock:
        return sorted(_pending)
