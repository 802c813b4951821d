"""The litgpt engine: a checkpoint loaded once per process, kept warm, used for generation.

Any litgpt checkpoint directory works (the project's own explainer, or a Phi/Gemma/Llama the
operator downloaded with litgpt elsewhere). The path must be absolute and complete: litgpt
treats anything else as a hub name and would try to download it. fp32 on CPU (faster than
litgpt's bf16 default there), litgpt's default precision on a GPU.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STARTER_CHECKPOINT = Path(__file__).resolve().parent / "starter" / "deepmed-explainer"
REQUIRED_FILES = ("lit_model.pth", "model_config.yaml")


class EngineUnavailable(RuntimeError):
    """The checkpoint cannot be loaded (missing, incomplete, or litgpt failed)."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 300
    temperature: float = 0.3
    top_k: int | None = 20
    top_p: float = 1.0
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch intra-op threads on CPU
    in_child_process: bool = False  # generate in a child process of its own (process_engine.py)
    child_nice: int = 0  # how much lower than this process that child runs


@dataclass(frozen=True)
class Completion:
    text: str
    seconds: float


def check_checkpoint_dir(checkpoint_dir: str | Path) -> Path:
    path = Path(checkpoint_dir)
    if not path.is_absolute():
        raise EngineUnavailable(f"checkpoint path must be absolute (litgpt treats {path} as a hub name)")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if not ((path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()):
        missing.append("tokenizer.json")
    if missing:
        raise EngineUnavailable(f"checkpoint {path} is missing {', '.join(missing)}")
    return path


def checkpoint_version(checkpoint_dir: str | Path) -> str:
    """A short content id for a checkpoint (config + head of the weights + size; cheap on large files)."""
    path = Path(checkpoint_dir)
    digest = hashlib.sha256((path / "model_config.yaml").read_bytes())
    weights = path / "lit_model.pth"
    digest.update(str(weights.stat().st_size).encode())
    with weights.open("rb") as fh:
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:12]


class LitGPTEngine:
    name = "litgpt"

    def __init__(self, llm, checkpoint_dir: Path, device: str):
        self.llm = llm
        self.checkpoint_dir = checkpoint_dir
        self.device = device
        self.model_name = llm.config.name or checkpoint_dir.name
        self.model_version = checkpoint_version(checkpoint_dir)
        self._lock = threading.Lock()  # the KV cache is per model: one generation at a time

    @property
    def model_id(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    @property
    def block_size(self) -> int:
        return int(self.llm.config.block_size)

    def generate(
        self, prompt: str, *, settings: GenerationSettings, system_prompt: str | None = None, seed: int | None = None
    ) -> Completion:
        import torch

        with self._lock:
            prompt_tokens = len(self.llm._text_to_token_ids(prompt, system_prompt))
            max_new = min(settings.max_new_tokens, self.block_size - prompt_tokens)
            if max_new <= 0:
                raise EngineUnavailable(
                    f"prompt of {prompt_tokens} tokens leaves no room in a {self.block_size}-token context"
                )
            torch.manual_seed(settings.seed if seed is None else seed)
            started = time.perf_counter()
            text = self.llm.generate(
                prompt,
                sys_prompt=system_prompt,
                max_new_tokens=max_new,
                temperature=settings.temperature,
                top_k=settings.top_k,
                top_p=settings.top_p,
            )
            return Completion(text=text, seconds=time.perf_counter() - started)


def load_engine(checkpoint_dir: str | Path, *, device: str = "auto", threads: int = 1) -> LitGPTEngine:
    path = check_checkpoint_dir(checkpoint_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for the hub
    try:
        import torch
        from litgpt import LLM

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        llm = LLM.load(str(path), distribute=None)
        llm.distribute(accelerator=device, devices=1, precision="32-true" if device == "cpu" else None)
    except EngineUnavailable:
        raise
    except Exception as exc:
        raise EngineUnavailable(f"could not load {path}: {exc}") from exc
    return LitGPTEngine(llm, path, device)


_ENGINES: dict[tuple[str, str, bool], object] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(
    checkpoint_dir: str | Path, *, device: str = "auto", threads: int = 1, in_child_process: bool = False, nice: int = 0
):
    """The process-wide engine for a checkpoint: loaded on first use, then kept warm. With
    `in_child_process`, a ProcessEngine (the same interface) that generates in a child process
    running `nice` steps lower, so generation does not hold this process's GIL."""
    key = (str(checkpoint_dir), device, in_child_process)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            if in_child_process:
                from ml_core.llm.process_engine import ProcessEngine

                _ENGINES[key] = ProcessEngine(checkpoint_dir, device=device, threads=threads, nice=nice)
            else:
                _ENGINES[key] = load_engine(checkpoint_dir, device=device, threads=threads)
        return _ENGINES[key]


def clear_engines() -> None:
    """Forget the loaded engines (and shut down their child processes)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        close = getattr(engine, "close", None)
        if close is not None:
            close()
