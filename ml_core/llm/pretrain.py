"""The project's own explainer: tokenizer + small litgpt GPT pretrained from scratch on the corpus.

One function per step (`train_tokenizer`, `build_model`, `encode_documents`, `train`,
`save_checkpoint`) and `build_explainer` that chains them. The result is an ordinary litgpt
checkpoint directory (lit_model.pth, model_config.yaml, tokenizer.json,
tokenizer_config.json, prompt_style.yaml) plus explainer.json describing how it was made.
torch/litgpt are imported inside functions: importing ml_core.llm stays light.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_core.llm.corpus import CORPUS_FILE, corpus_documents, write_corpus
from ml_core.llm.prompt import ANSWER_OPEN

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
EXPLAINER_META = "explainer.json"
IGNORE_INDEX = -100


@dataclass
class ExplainerModelConfig:
    """Shape of the GPT (pythia-style blocks from litgpt)."""

    name: str = "deepmed-explainer"
    vocab_size: int = 1024
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    intermediate_size: int = 512
    block_size: int = 384


@dataclass
class PretrainConfig:
    documents_per_class: int = 400
    steps: int = 1200
    batch_size: int = 16
    learning_rate: float = 3e-3
    min_learning_rate: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2
    log_every: int = 50
    save_dtype: str = "float16"  # halves the shipped file; loaded back as fp32 on CPU


@dataclass
class BuildReport:
    checkpoint_dir: str
    classes: list[str]
    documents: int
    parameters: int
    steps: int
    train_seconds: float
    final_loss: float
    checkpoint_bytes: int
    losses: list[float] = field(default_factory=list)


def train_tokenizer(documents: Sequence[str], out_dir: str | Path, *, vocab_size: int) -> Path:
    """Byte-level BPE (`tokenizers`), saved the way litgpt's Tokenizer reads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    # litgpt reads "tokenizer_class" and the special tokens from here.
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "add_bos_token": False,
                "eos_token": EOS_TOKEN,
                "pad_token": PAD_TOKEN,
                "model_max_length": 4096,
            },
            indent=2,
        )
    )
    return out_dir


def tokenizer_vocab_size(tokenizer_dir: str | Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def litgpt_config(spec: ExplainerModelConfig, vocab_size: int):
    from litgpt import Config
    from litgpt.config import name_to_config

    return Config(
        **{
            **name_to_config["pythia-14m"],
            "name": spec.name,
            "hf_config": {},
            "block_size": spec.block_size,
            "vocab_size": vocab_size,
            "padded_vocab_size": vocab_size,
            "n_layer": spec.n_layer,
            "n_head": spec.n_head,
            "n_embd": spec.n_embd,
            "intermediate_size": spec.intermediate_size,
        }
    )


def build_model(spec: ExplainerModelConfig, vocab_size: int, *, seed: int = 0):
    import torch
    from litgpt import GPT

    torch.manual_seed(seed)
    return GPT(litgpt_config(spec, vocab_size))


def encode_documents(tokenizer_dir: str | Path, documents: Sequence[str], *, block_size: int):
    """(inputs, targets) of shape N x block_size. Only the explanation and its end-of-text token
    are learned: prompt tokens and padding are masked out of the loss."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    eos, pad = tok.token_to_id(EOS_TOKEN), tok.token_to_id(PAD_TOKEN)
    rows_in, rows_out = [], []
    for doc in documents:
        split = doc.index(ANSWER_OPEN) + len(ANSWER_OPEN) + 1  # prompt ends after "<explanation>\n"
        prompt_ids = tok.encode(doc[:split]).ids
        answer_ids = tok.encode(doc[split:]).ids + [eos]
        ids = (prompt_ids + answer_ids)[: block_size + 1]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[: block_size + 1]
        pad_len = block_size + 1 - len(ids)
        ids, labels = ids + [pad] * pad_len, labels + [IGNORE_INDEX] * pad_len
        rows_in.append(ids[:-1])
        rows_out.append(labels[1:])
    return torch.tensor(rows_in, dtype=torch.long), torch.tensor(rows_out, dtype=torch.long)


def train(
    model, inputs, targets, cfg: PretrainConfig, *, on_step: Callable[[int, float], None] | None = None
) -> list[float]:
    """Plain AdamW loop with warm-up + cosine decay; returns the logged losses."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(0.9, 0.95),
    )
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        lr = _learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, inputs.shape[0], (cfg.batch_size,), generator=gen)
        x, y = inputs[idx], targets[idx]
        # Trim the batch to its longest real row: padding costs time, not quality.
        width = int((y != IGNORE_INDEX).nonzero()[:, 1].max().item()) + 1 if (y != IGNORE_INDEX).any() else 1
        logits = model(x[:, :width])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[:, :width].reshape(-1), ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            losses.append(round(float(loss.item()), 4))
            logger.info("explainer step %d/%d loss %.4f lr %.2e", step + 1, cfg.steps, loss.item(), lr)
            if on_step is not None:
                on_step(step, float(loss.item()))
    model.eval()
    return losses


def _learning_rate(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_learning_rate + 0.5 * (cfg.learning_rate - cfg.min_learning_rate) * (
        1 + math.cos(math.pi * progress)
    )


def save_checkpoint(model, out_dir: str | Path, *, dtype: str = "float32", meta: dict[str, Any] | None = None) -> Path:
    """Write lit_model.pth + model_config.yaml + prompt_style.yaml (+ explainer.json)."""
    import torch
    from litgpt.prompts import Default, save_prompt_style
    from litgpt.utils import save_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in model.state_dict().items()
    }
    torch.save(state, out_dir / "lit_model.pth")
    save_config(model.config, out_dir)
    save_prompt_style(Default(), out_dir)  # the corpus layout is the prompt: no chat template
    if meta is not None:
        (out_dir / EXPLAINER_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out_dir


def build_explainer(
    out_dir: str | Path,
    classes: Sequence[str],
    *,
    spec: ExplainerModelConfig | None = None,
    cfg: PretrainConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> BuildReport:
    """Corpus -> tokenizer -> GPT from scratch -> litgpt checkpoint in `out_dir`."""
    import torch

    spec, cfg = spec or ExplainerModelConfig(), cfg or PretrainConfig()
    if not classes:
        raise ValueError("the explainer needs the image model's classes")
    torch.set_num_threads(max(1, cfg.threads))
    random.seed(cfg.seed)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    documents = corpus_documents(classes, per_class=cfg.documents_per_class, seed=cfg.seed)
    write_corpus(out_dir / CORPUS_FILE, documents)
    train_tokenizer(documents, out_dir, vocab_size=spec.vocab_size)
    vocab_size = tokenizer_vocab_size(out_dir)
    inputs, targets = encode_documents(out_dir, documents, block_size=spec.block_size)
    model = build_model(spec, vocab_size, seed=cfg.seed)
    started = time.perf_counter()
    losses = train(model, inputs, targets, cfg, on_step=on_step)
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters())
    meta = {
        "name": spec.name,
        "classes": list(classes),
        "model": asdict(spec),
        "training": asdict(cfg),
        "documents": len(documents),
        "parameters": parameters,
        "train_seconds": round(seconds, 1),
        "final_loss": losses[-1],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    save_checkpoint(model, out_dir, dtype=cfg.save_dtype, meta=meta)
    (out_dir / CORPUS_FILE).unlink()  # rebuilt from the facts table on demand; not shipped
    return BuildReport(
        checkpoint_dir=str(out_dir),
        classes=list(classes),
        documents=len(documents),
        parameters=parameters,
        steps=cfg.steps,
        train_seconds=round(seconds, 1),
        final_loss=losses[-1],
        checkpoint_bytes=sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file()),
        losses=losses,
    )
