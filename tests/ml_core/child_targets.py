"""Functions for tests/ml_core/test_child_process.py to run in a spawned child: a child imports them
by module name, which a test module (imported by pytest under a synthetic name) would not have."""

from __future__ import annotations

import os
import signal
import time


def describe(value):
    """What the child sees of itself."""
    return {"pid": os.getpid(), "nice": os.nice(0), "omp": os.environ.get("OMP_NUM_THREADS"), "value": value}


def count(n: int, *, progress) -> int:
    for i in range(n):
        progress(i, {"square": i * i})
    return n


class Stopped(RuntimeError):
    pass


def loop_until_stopped(*, should_stop, progress) -> None:
    steps = 0
    while not should_stop():
        steps += 1
        progress(steps)
        time.sleep(0.05)
    raise Stopped(f"stopped after {steps} steps")


class NeedsTwoArguments(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def raise_unpicklable() -> None:
    raise NeedsTwoArguments("first", "second")


def raise_value_error() -> None:
    raise ValueError("bad configuration: epochs must be positive")


def die_after_progress(*, progress) -> None:
    progress("about to die")
    time.sleep(0.5)  # the queue's feeder thread sends it (a SIGKILL loses what is not sent yet)
    os.kill(os.getpid(), signal.SIGKILL)
