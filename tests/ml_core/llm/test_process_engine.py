"""ProcessEngine: the litgpt engine in a child process (real spawned children, a few seconds each)."""

import contextlib
import os
import signal
import time

import pytest

from ml_core.llm import engine as llm_engine
from ml_core.llm.engine import EngineUnavailable, GenerationSettings, load_engine
from ml_core.llm.explain import explain
from ml_core.llm.process_engine import ProcessEngine
from ml_core.llm.prompt import SYSTEM_PROMPT, build_prompt
from ml_core.llm.testing import sample_facts

FAST = GenerationSettings(max_new_tokens=40, device="cpu")


@pytest.fixture
def process_engine(tiny_llm_checkpoint):
    engine = ProcessEngine(tiny_llm_checkpoint, device="cpu", nice=3)
    yield engine
    engine.close()


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_niced_child_generates_what_the_in_process_engine_does(process_engine, tiny_llm_checkpoint):
    in_process = load_engine(tiny_llm_checkpoint, device="cpu")
    prompt = build_prompt(sample_facts())
    greedy = GenerationSettings(max_new_tokens=40, temperature=0.0, top_k=1, device="cpu")

    completion = process_engine.generate(prompt, settings=greedy, system_prompt=SYSTEM_PROMPT, seed=5)

    assert process_engine.pid not in (None, os.getpid())
    assert completion.text and completion.seconds > 0
    assert completion.text == in_process.generate(prompt, settings=greedy, system_prompt=SYSTEM_PROMPT, seed=5).text
    assert (process_engine.model_id, process_engine.block_size, process_engine.device) == (
        in_process.model_id,
        in_process.block_size,
        "cpu",
    )
    assert process_engine.name == in_process.name == "litgpt"
    parent_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
    assert os.getpriority(os.PRIO_PROCESS, process_engine.pid) == min(19, parent_nice + 3)


def test_a_child_that_died_while_idle_is_replaced_before_the_call(process_engine):
    first = process_engine.pid
    os.kill(first, signal.SIGKILL)
    assert _gone(first)  # reaped: the pool has seen it die

    completion = process_engine.generate("The model looked at", settings=FAST, seed=3)

    assert completion.text  # the call itself went to the new child, not to the template
    assert process_engine.pid not in (None, first) and process_engine.starts == 2


def test_a_child_killed_under_a_call_fails_the_call_and_the_next_call_starts_a_new_one(process_engine, monkeypatch):
    from ml_core.llm import process_engine as module

    first = process_engine.pid
    monkeypatch.setattr(module, "_child_generate", _killed_under_the_call)

    with pytest.raises(EngineUnavailable, match="died"):
        process_engine.generate("The model looked at", settings=FAST, seed=3)
    assert process_engine.pid is None and _gone(first)

    monkeypatch.undo()
    completion = process_engine.generate("The model looked at", settings=FAST, seed=3)
    assert completion.text
    assert process_engine.pid not in (None, first) and process_engine.starts == 2


def _killed_under_the_call(*args):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_child_killed_under_a_call_gives_the_template_not_an_error(process_engine):
    """explain() treats the dead child like any engine error: the study still gets its explanation."""

    class KilledMidCall:
        name, model_id = process_engine.name, process_engine.model_id

        def generate(self, prompt, **kwargs):
            os.kill(process_engine.pid, signal.SIGKILL)
            return process_engine.generate(prompt, **kwargs)

    outcome = explain(sample_facts(), KilledMidCall(), settings=FAST)

    assert outcome.outcome == "template_engine_error"
    assert "EngineUnavailable" in outcome.attempts[0]["error"]


def test_a_checkpoint_the_child_cannot_load_is_unavailable(tmp_path, tiny_llm_checkpoint):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_llm_checkpoint.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "lit_model.pth").write_bytes(b"not a torch file")

    with pytest.raises(EngineUnavailable, match="could not load"):
        ProcessEngine(broken, device="cpu")
    with pytest.raises(EngineUnavailable, match="missing"):  # refused before any child starts
        ProcessEngine(tmp_path / "nowhere", device="cpu")


def test_get_engine_keeps_one_child_and_clear_engines_stops_it(tiny_llm_checkpoint):
    llm_engine.clear_engines()
    try:
        engine = llm_engine.get_engine(tiny_llm_checkpoint, device="cpu", in_child_process=True)
        assert isinstance(engine, ProcessEngine)
        assert llm_engine.get_engine(tiny_llm_checkpoint, device="cpu", in_child_process=True) is engine
        assert not isinstance(llm_engine.get_engine(tiny_llm_checkpoint, device="cpu"), ProcessEngine)
        pid = engine.pid
    finally:
        llm_engine.clear_engines()
    assert _gone(pid)


def test_a_hung_child_is_stopped_after_the_timeout_and_the_next_call_starts_a_new_one(process_engine):
    first = process_engine.pid
    process_engine.timeout_s = 1.0
    os.kill(first, signal.SIGSTOP)  # hung: alive, never answers
    try:
        with pytest.raises(EngineUnavailable, match="no answer within 1 s"):
            process_engine.generate("The model looked at", settings=FAST, seed=3)
        assert _gone(first)  # killed, not left stopped behind
        assert process_engine.pid is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first, signal.SIGCONT)

    process_engine.timeout_s = 60.0
    assert process_engine.generate("The model looked at", settings=FAST, seed=3).text
    assert process_engine.pid not in (None, first) and process_engine.starts == 2
