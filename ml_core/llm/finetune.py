"""LoRA fine-tune hook: physician-edited explanations → instruction dataset → litgpt LoRA → merged checkpoint.

litgpt's `finetune_lora` is run through its CLI in a subprocess: its setup() records
`sys.argv` as hyperparameters.yaml, which the LoRA merge reads back, so calling it as a
library would record the caller's argv. The merged result is an ordinary litgpt checkpoint
(`<out>/final`) that DEEPMED_LLM_CHECKPOINT can point at. Tracked in MLflow through
ml_core.tracking when a tracking URI is given.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ml_core.llm.engine import check_checkpoint_dir

logger = logging.getLogger(__name__)

MLFLOW_EXPERIMENT = "deepmed-explainer-lora"


@dataclass(frozen=True)
class InstructionExample:
    instruction: str  # the structured-facts prompt
    output: str  # the physician's text
    input: str = ""


@dataclass
class LoraConfig:
    steps: int = 20
    learning_rate: float = 1e-3
    lora_r: int = 8
    lora_alpha: int = 16
    micro_batch_size: int = 1
    global_batch_size: int = 4
    warmup_steps: int = 1  # litgpt divides by it: >= 1 and < steps
    precision: str = "32-true"
    seed: int = 1337


@dataclass
class FinetuneResult:
    checkpoint_dir: str  # merged litgpt checkpoint
    examples: int
    steps: int
    seconds: float
    mlflow_run_id: str = ""


def write_instruction_dataset(examples: Sequence[InstructionExample], path: str | Path) -> Path:
    """A JSON list of {instruction, input, output} (the layout litgpt's JSON data module reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(e) for e in examples], indent=1), encoding="utf-8")
    return path


def _data_dir(data_path: Path, work_dir: Path) -> tuple[Path, int]:
    """litgpt wants train.json + val.json; with a handful of edits the validation set is a copy."""
    rows = json.loads(data_path.read_text(encoding="utf-8"))
    if not rows:
        raise ValueError(f"{data_path} has no examples")
    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    (data_dir / "val.json").write_text(json.dumps(rows[: max(1, min(8, len(rows) // 5))]), encoding="utf-8")
    return data_dir, len(rows)


def finetune_lora(
    base_checkpoint: Path,
    data_path: Path,
    out_dir: Path,
    cfg: LoraConfig | None = None,
    *,
    tracking_uri: str | None = None,
    artifact_root: str | Path | None = None,
    timeout_s: int = 3600,
) -> FinetuneResult:
    import yaml

    cfg = cfg or LoraConfig()
    if cfg.steps < 2:
        raise ValueError("LoRA fine-tune needs at least 2 steps (one is warm-up)")
    base_checkpoint = check_checkpoint_dir(base_checkpoint)
    block_size = yaml.safe_load((base_checkpoint / "model_config.yaml").read_text())["block_size"]
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir, examples = _data_dir(Path(data_path), out_dir)
    args = [
        sys.executable,
        "-m",
        "litgpt",
        "finetune_lora",
        str(base_checkpoint),
        "--out_dir",
        str(out_dir),
        "--precision",
        cfg.precision,
        "--devices",
        "1",
        "--seed",
        str(cfg.seed),
        "--lora_r",
        str(cfg.lora_r),
        "--lora_alpha",
        str(cfg.lora_alpha),
        "--data",
        "JSON",
        "--data.json_path",
        str(data_dir),
        # The instruction already is the facts prompt: no template around it.
        "--data.prompt_style",
        json.dumps({"class_path": "litgpt.prompts.Default"}),
        "--data.mask_prompt",
        "true",
        "--data.num_workers",
        "0",
        "--train.max_steps",
        str(cfg.steps),
        "--train.epochs",
        "1000",
        "--train.micro_batch_size",
        str(cfg.micro_batch_size),
        "--train.global_batch_size",
        str(cfg.global_batch_size),
        "--train.lr_warmup_steps",
        str(max(1, min(cfg.warmup_steps, cfg.steps - 1))),
        "--train.max_seq_length",
        str(block_size),  # longer examples are truncated, not fatal
        "--train.save_interval",
        str(10**9),
        "--eval.interval",
        str(10**9),
        "--eval.final_validation",
        "false",
        "--optimizer",
        json.dumps({"class_path": "torch.optim.AdamW", "init_args": {"lr": cfg.learning_rate}}),
        "--logger_name",
        "csv",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=out_dir, env=env, capture_output=True, text=True, timeout=timeout_s)
    seconds = time.perf_counter() - started
    (out_dir / "finetune.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    final = out_dir / "final"
    if proc.returncode != 0 or not (final / "lit_model.pth").is_file():
        raise RuntimeError(
            f"litgpt finetune_lora failed (rc={proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    result = FinetuneResult(checkpoint_dir=str(final), examples=examples, steps=cfg.steps, seconds=round(seconds, 1))
    logger.info("LoRA fine-tune: %d examples, %d steps, %.0f s -> %s", examples, cfg.steps, seconds, final)
    if tracking_uri:
        result.mlflow_run_id = _track(result, cfg, base_checkpoint, out_dir, tracking_uri, artifact_root)
    return result


def _track(
    result: FinetuneResult,
    cfg: LoraConfig,
    base: Path,
    out_dir: Path,
    tracking_uri: str,
    artifact_root: str | Path | None,
) -> str:
    from ml_core.tracking import start_run

    with start_run(
        tracking_uri,
        experiment=MLFLOW_EXPERIMENT,
        artifact_root=str(artifact_root) if artifact_root else None,
        run_name=f"lora-{out_dir.name}",
        tags={"checkpoint_dir": result.checkpoint_dir},
    ) as run:
        run.log_params({**asdict(cfg), "base_checkpoint": str(base), "examples": result.examples})
        run.log_metrics({"train_seconds": result.seconds})
        for name in ("finetune.log", "final/hyperparameters.yaml"):
            if (out_dir / name).is_file():
                run.log_artifact(out_dir / name)
    return run.run_id
