"""Run one long ml_core call (a training run, a package build) in a spawned child process.

A host process whose other threads must stay responsive (embedded mode's web server and inference
consumer) cannot give a training loop a thread of its own: the loop's Python holds the GIL they
need, and a thread's niceness does not bound what its torch threads cost. `run_in_child` calls
`fn(*args, **kwargs)` in a fresh child started with multiprocessing's *spawn* context, at a lower
priority and with bounded torch threads, and waits for it:

- `progress(*event)` callbacks the child makes are forwarded to the parent's `progress`, in order,
  on the calling thread (so a Django caller stores them with its own database connection);
- the parent's `should_stop()` is polled at once and then every `stop_poll_s`; once true, the child's
  `should_stop()` answers true (the child's function decides how to stop, e.g. TrainingCancelled);
- the child's return value is returned, its exception re-raised (ChildFailed with the child's
  traceback when the exception cannot cross the process boundary);
- a child that dies (killed, out of memory) raises ChildDied; a parent that dies takes the child
  with it (the child watches its parent), and a parent thread that is interrupted kills the child.

`fn` and its arguments must be picklable (module-level functions, plain data). As with any spawned
child, the parent's main script is imported in the child, so it must be import-safe (`manage.py`,
celery and pytest are). No Django here: what runs in the child is plain ml_core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class ChildDied(RuntimeError):
    """The child process ended without an answer (killed, out of memory, crashed)."""


class ChildFailed(RuntimeError):
    """The child raised an exception that could not be sent back as itself; carries its traceback."""


def process_niceness() -> int:
    """This process's niceness (its main thread's: Linux schedules threads separately)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, os.getpid())
    except (AttributeError, OSError):
        return 0


def child_niceness(nice: int) -> int:
    """The niceness of a child that runs `nice` lower than this process (capped at 19)."""
    return min(19, process_niceness() + max(0, nice))


def run_in_child(
    fn: Callable[..., Any],
    /,
    *args: Any,
    progress: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    nice: int = 0,
    threads: int = 0,
    stop_poll_s: float = 1.0,
    **kwargs: Any,
) -> Any:
    """`fn(*args, **kwargs)` in a spawned child (see the module docstring). `progress` and
    `should_stop`, when given, are passed to `fn` as keyword arguments bridged to the parent's.
    `nice`: how much lower than this process the child runs; `threads`: torch/OpenMP threads of
    the child (0 leaves the libraries' defaults)."""
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    stop = ctx.Event()
    target_nice = child_niceness(nice)
    child = ctx.Process(
        target=_child_main,
        args=(fn, args, kwargs, messages, stop, progress is not None, should_stop is not None),
        kwargs={"target_nice": target_nice, "threads": threads, "parent_pid": os.getpid()},
        name=f"ml_core-{getattr(fn, '__name__', 'call')}",
        daemon=True,  # never outlives the parent's interpreter
    )
    child.start()
    logger.info("%s runs in child process %d (nice %d)", getattr(fn, "__qualname__", fn), child.pid, target_nice)
    try:
        return _wait(child, messages, stop, progress, should_stop, stop_poll_s)
    finally:
        if child.is_alive():  # the parent gave up (an exception here, an interrupted thread)
            child.kill()
        child.join(timeout=10)
        messages.close()


def _wait(child, messages, stop, progress, should_stop, stop_poll_s: float) -> Any:
    next_stop_check = time.monotonic()  # at once: a job cancelled before it began never starts
    while True:
        try:
            kind, payload = messages.get(timeout=min(0.2, stop_poll_s))
        except queue.Empty:
            kind, payload = None, None
            if not child.is_alive():
                try:  # what it sent just before exiting may still be in the pipe
                    kind, payload = messages.get(timeout=1.0)
                except queue.Empty:
                    _died(child)
        if kind == "progress":
            progress(*payload)
        elif kind == "result":
            return payload
        elif kind == "error":
            raise payload
        elif kind == "failed":
            raise ChildFailed(payload)  # the child's formatted traceback
        if should_stop is not None and not stop.is_set() and time.monotonic() >= next_stop_check:
            next_stop_check = time.monotonic() + stop_poll_s
            if should_stop():
                stop.set()


def _died(child) -> None:
    child.join(timeout=5)
    raise ChildDied(f"the child process {child.pid} running {child.name} died (exit code {child.exitcode})")


# --- in the child ------------------------------------------------------------------------


def _child_main(
    fn, args, kwargs, messages, stop, bridge_progress: bool, bridge_stop: bool, *, target_nice, threads, parent_pid
) -> None:
    prepare_child(target_nice=target_nice, threads=threads, parent_pid=parent_pid)
    if bridge_progress:
        kwargs["progress"] = lambda *event: messages.put(("progress", event))
    if bridge_stop:
        kwargs["should_stop"] = stop.is_set
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        messages.put(_error_message(exc))
    else:
        messages.put(("result", result))
    messages.close()
    messages.join_thread()  # flushed before the process exits


def prepare_child(*, target_nice: int, threads: int, parent_pid: int) -> None:
    """A child's set-up: its niceness, its torch threads (before torch is imported) and a watch
    that ends it when its parent is gone. Shared by every ml_core child (run_in_child, the
    explanation engine's ProcessEngine)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    try:
        current = os.nice(0)
        if target_nice > current:
            os.nice(target_nice - current)
    except (AttributeError, OSError):
        pass
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)  # the parent was killed without stopping us


def _error_message(exc: BaseException) -> tuple[str, Any]:
    try:
        pickle.loads(pickle.dumps(exc))  # e.g. an exception whose __init__ takes other arguments
        return ("error", exc)
    except Exception:
        return ("failed", "".join(traceback.format_exception(exc)))
