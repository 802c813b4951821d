"""The litgpt engine in a long-lived child process, for a host process whose other threads must
keep the interpreter: token generation is mostly Python, so in-process it holds the GIL that a web
server and an inference thread also need.

`ProcessEngine` has the interface the explanation code uses (`generate`, `name`, `model_id`,
`block_size`, `device`). It owns one child started with multiprocessing's *spawn* context, which
loads the checkpoint once (`load_engine`), lowers its own priority and uses the given number of
torch threads. A child that dies (killed, out of memory) makes the call in flight, or the next one,
raise EngineUnavailable; the call after that starts a fresh child. A child that does not answer
within `timeout_s` (hung, or stopped) is killed the same way, so it cannot hold the `llm` consumer
for ever. The child is shut down by
`close()`, by `engine.clear_engines()` and at interpreter exit, and exits by itself when its
parent is gone. As with any spawned child, the parent's main script is imported in the child, so it
must be import-safe (`manage.py`, celery and pytest are; a script read from stdin is not).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ml_core.child_process import child_niceness, prepare_child
from ml_core.llm.engine import Completion, EngineUnavailable, GenerationSettings, check_checkpoint_dir, load_engine

logger = logging.getLogger(__name__)

# An explanation takes well under a second of CPU (0.3-0.45 s for ~220 tokens on this project's
# 2-core machine); a child that has not answered in this long is hung, not busy.
DEFAULT_TIMEOUT_S = 60.0

_LIVE: weakref.WeakSet[ProcessEngine] = weakref.WeakSet()


@dataclass(frozen=True)
class ChildInfo:
    """What the child reports once its engine is loaded."""

    pid: int
    model_name: str
    model_version: str
    model_id: str
    block_size: int
    device: str


class ProcessEngine:
    """A LitGPTEngine running in a child process (see the module docstring)."""

    name = "litgpt"

    def __init__(
        self,
        checkpoint_dir: str | Path,
        *,
        device: str = "auto",
        threads: int = 1,
        nice: int = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        """Start the child and load the checkpoint in it (EngineUnavailable if it cannot).
        `nice`: how much lower than this process (its main thread) the child runs; `timeout_s`: how
        long one generation may take before the child is killed (the load is not limited)."""
        self.timeout_s = timeout_s
        self.checkpoint_dir = check_checkpoint_dir(checkpoint_dir)  # refused here, before a child starts
        self.device_setting = device
        self.threads = max(1, threads)
        self.nice = max(0, nice)
        self.starts = 0
        self._pool: ProcessPoolExecutor | None = None
        self._info: ChildInfo | None = None
        self._lock = threading.Lock()  # one generation at a time, and one child
        with self._lock:
            self._start()
        _LIVE.add(self)

    # --- what the explanation code reads ---------------------------------------------------

    @property
    def info(self) -> ChildInfo:
        assert self._info is not None
        return self._info

    @property
    def model_name(self) -> str:
        return self.info.model_name

    @property
    def model_version(self) -> str:
        return self.info.model_version

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def block_size(self) -> int:
        return self.info.block_size

    @property
    def device(self) -> str:
        return self.info.device

    @property
    def pid(self) -> int | None:
        """The running child's process id (None once it died or was closed)."""
        return self._info.pid if self._pool is not None and self._info is not None else None

    def generate(
        self, prompt: str, *, settings: GenerationSettings, system_prompt: str | None = None, seed: int | None = None
    ) -> Completion:
        with self._lock:
            try:
                future = self._submit(prompt, settings, system_prompt, seed)
                return future.result(timeout=self.timeout_s)
            except FutureTimeout as exc:
                pid = self._info.pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self.close(wait=False)
                raise EngineUnavailable(
                    f"the explanation process (pid {pid}) gave no answer within {self.timeout_s:g} s and was "
                    "stopped; the next explanation starts a new one"
                ) from exc
            except BrokenProcessPool as exc:
                self.close(wait=False)
                raise EngineUnavailable(
                    f"the explanation process (pid {self._info.pid}) died; the next explanation starts a new one"
                ) from exc

    def _submit(self, *args):
        """Hand a generation to the child, starting a new one (the checkpoint loads again) when
        the last died under a call, or died while idle: the pool then refuses the work at once,
        before anything was sent, so the new child can take it and the study keeps its LLM text."""
        if self._pool is None:
            self._start()
        try:
            return self._pool.submit(_child_generate, *args)
        except BrokenProcessPool:
            logger.warning("explanation process (pid %s) had died while idle; starting a new one", self._info.pid)
            self.close(wait=False)
            self._start()
            return self._pool.submit(_child_generate, *args)

    def close(self, *, wait: bool = True) -> None:
        """Shut the child down (a later generate() starts a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    # --- the child's lifecycle -------------------------------------------------------------

    def _start(self) -> None:
        target_nice = child_niceness(self.nice)
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init,
            initargs=(str(self.checkpoint_dir), self.device_setting, self.threads, target_nice, os.getpid()),
        )
        try:
            info = pool.submit(_child_describe).result()
        except BrokenProcessPool as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise EngineUnavailable(f"the explanation process died while loading {self.checkpoint_dir}") from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        self._pool, self._info = pool, info
        self.starts += 1
        logger.info(
            "explanation engine %s loaded in child process %d (nice %d, %d torch threads)",
            info.model_id,
            info.pid,
            target_nice,
            self.threads,
        )


@atexit.register
def _close_all() -> None:
    for engine in list(_LIVE):
        with contextlib.suppress(Exception):  # exiting anyway
            engine.close(wait=False)


# --- in the child ------------------------------------------------------------------------

_child: dict = {}


def _child_init(checkpoint_dir: str, device: str, threads: int, target_nice: int, parent_pid: int) -> None:
    prepare_child(target_nice=target_nice, threads=threads, parent_pid=parent_pid)
    try:
        _child["engine"] = load_engine(checkpoint_dir, device=device, threads=threads)
    except EngineUnavailable as exc:  # reported by each call (an initializer error would only break the pool)
        _child["error"] = exc
    except Exception as exc:
        _child["error"] = EngineUnavailable(f"could not load {checkpoint_dir}: {type(exc).__name__}: {exc}")


def _child_engine():
    if "error" in _child:
        raise _child["error"]
    return _child["engine"]


def _child_describe() -> ChildInfo:
    engine = _child_engine()
    return ChildInfo(
        pid=os.getpid(),
        model_name=engine.model_name,
        model_version=engine.model_version,
        model_id=engine.model_id,
        block_size=engine.block_size,
        device=engine.device,
    )


def _child_generate(
    prompt: str, settings: GenerationSettings, system_prompt: str | None, seed: int | None
) -> Completion:
    return _child_engine().generate(prompt, settings=settings, system_prompt=system_prompt, seed=seed)
