"""ml_core.child_process.run_in_child with real spawned children."""

from __future__ import annotations

import os

import pytest

from ml_core.child_process import ChildDied, ChildFailed, process_niceness, run_in_child
from tests.ml_core import child_targets

pytestmark = pytest.mark.slow  # each test spawns a Python interpreter


def test_the_call_runs_in_another_process_lower_and_with_bounded_threads():
    seen = run_in_child(child_targets.describe, {"epochs": 3}, nice=5, threads=1)

    assert seen["value"] == {"epochs": 3}
    assert seen["pid"] != os.getpid()
    assert seen["nice"] == min(19, process_niceness() + 5)
    assert seen["omp"] == "1"


def test_progress_reaches_the_parent_in_order_on_the_calling_thread():
    events = []

    assert run_in_child(child_targets.count, 5, progress=lambda *event: events.append(event)) == 5
    assert events == [(i, {"square": i * i}) for i in range(5)]


def test_should_stop_in_the_parent_stops_the_child_and_its_exception_comes_back():
    steps = []

    with pytest.raises(child_targets.Stopped, match="stopped after"):
        run_in_child(
            child_targets.loop_until_stopped,
            progress=steps.append,
            should_stop=lambda: len(steps) >= 3,
            stop_poll_s=0.05,
        )
    assert len(steps) >= 3


def test_exceptions_keep_their_type_or_come_back_with_the_childs_traceback():
    with pytest.raises(ValueError, match="epochs must be positive"):
        run_in_child(child_targets.raise_value_error)
    with pytest.raises(ChildFailed, match="NeedsTwoArguments: first and second"):
        run_in_child(child_targets.raise_unpicklable)


def test_a_killed_child_is_reported_not_waited_for():
    events = []

    with pytest.raises(ChildDied, match="exit code -9"):
        run_in_child(child_targets.die_after_progress, progress=events.append)
    assert events == ["about to die"]
