"""The training loop shared by the classifier families.

``train(spec, model, data, out_dir)``: AdamW with a backbone and a head learning rate,
linear warmup + cosine decay, gradient clipping, fp32/bf16/fp16 (GradScaler) precision,
tensor augmentation of the cached images, early stopping on validation accuracy, a
checkpoint every epoch and resumption of a killed run. Writes the files listed in
``medvqa.training.checkpoint`` under ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from medvqa.models import BuiltModel, count_parameters, family_of
from medvqa.spec import Spec, check_choice, check_range
from medvqa.training import checkpoint
from medvqa.training.augment import AugmentSpec, augment, to_float
from medvqa.training.data import IGNORE_INDEX, Batch, VQASplit, make_loader

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
# Spec keys that may change between a killed run and its re-run (more epochs, another machine).
RESUME_FREE_KEYS = ("epochs", "patience", "device", "workers")


@dataclasses.dataclass(frozen=True)
class TrainSpec(Spec):
    """The ``train:`` sub-mapping of a model config (``seed`` comes from the {seed} wildcard)."""

    epochs: int = 20  # most epochs; early stopping may end sooner
    batch_size: int = 32
    lr: float = 1e-3  # peak learning rate of the new layers
    backbone_lr: float = 1e-4  # peak learning rate of the (pretrained) backbone
    weight_decay: float = 0.01  # AdamW decay of weight matrices (not of biases and norms)
    warmup: float = 0.05  # fraction of all steps with linear warmup
    min_lr: float = 0.0  # final learning rate as a fraction of the peak
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    label_smoothing: float = 0.0
    patience: int = 5  # epochs without a better validation accuracy before stopping
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on CUDA, fp32 on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 0  # DataLoader worker processes
    seed: int = 0
    augment: AugmentSpec = dataclasses.field(default_factory=AugmentSpec)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, where: str = "") -> TrainSpec:
        mapping = dict(mapping or {})
        where = where or cls.__name__
        mapping["augment"] = AugmentSpec.from_mapping(mapping.get("augment"), f"{where}.augment")
        return super().from_mapping(mapping, where)

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size", "patience"):
            check_range(where, key, getattr(self, key), 1)
        for key in ("lr", "backbone_lr", "weight_decay", "grad_clip", "workers"):
            check_range(where, key, getattr(self, key), 0)
        for key in ("warmup", "min_lr", "label_smoothing"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)
        check_choice(where, "precision", self.precision, PRECISIONS)


class TrainData(NamedTuple):
    train: VQASplit
    val: VQASplit
    answers: list[str]  # answers.json["answers"]: class index → answer
    pad_id: int  # question padding id


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto → bf16 (fp16 on GPUs without bf16) on CUDA, fp32 on CPU; half precision needs CUDA."""
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            log.warning("precision %s needs CUDA; training in fp32 on %s", precision, device)
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def make_optimizer(spec: TrainSpec, model: BuiltModel) -> torch.optim.AdamW:
    """AdamW over trainable parameters: backbone/head learning rates, no decay on 1-d tensors."""
    groups = []
    named_groups = family_of(model.family).param_groups(model.module)
    for name, params in named_groups.items():
        lr = spec.backbone_lr if name == "backbone" else spec.lr
        params = [p for p in params if p.requires_grad]
        matrices, vectors = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
        for subset, decay in ((matrices, spec.weight_decay), (vectors, 0.0)):
            if subset:
                groups.append({"params": subset, "lr": lr, "weight_decay": decay, "name": name})
    return torch.optim.AdamW(groups)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr: float) -> float:
    """Learning-rate factor: linear from 0 to 1 over warmup, then cosine from 1 to ``min_lr``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec, steps_per_epoch: int):
    total = spec.epochs * steps_per_epoch
    schedule = functools.partial(
        warmup_cosine, warmup_steps=round(spec.warmup * total), total_steps=total, min_lr=spec.min_lr
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def forward_batch(module: nn.Module, batch: Batch, device: torch.device, precision: str, augment_spec=None):
    """One batch through the model → (logits (B, n_answers) float32, labels (B,), output)."""
    images = to_float(batch.images.to(device, non_blocking=True))
    if augment_spec is not None:
        images = augment(augment_spec, images)
    with autocast(device, precision):
        output = module(images, batch.input_ids.to(device), batch.attention_mask.to(device))
    return output.logits.float(), batch.labels.to(device), output


class Totals:
    """Running sums of loss and accuracy; labels equal to IGNORE_INDEX count as wrong, add no loss."""

    def __init__(self) -> None:
        self.loss = self.correct = self.scored = self.seen = 0.0

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        self.loss += float(loss_sum)
        self.scored += int((labels != IGNORE_INDEX).sum())
        self.correct += int((logits.argmax(-1) == labels).sum())
        self.seen += len(labels)

    def means(self) -> tuple[float, float]:
        return self.loss / max(1, self.scored), self.correct / max(1, self.seen)


class Loop(NamedTuple):
    """What every training step needs."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    precision: str


def make_loop(spec: TrainSpec, model: BuiltModel, steps_per_epoch: int) -> Loop:
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    module = model.module.to(device)
    optimizer = make_optimizer(spec, model)
    scheduler = make_scheduler(optimizer, spec, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Loop(module, optimizer, scheduler, scaler, device, precision)


def train_epoch(spec: TrainSpec, loop: Loop, loader, desc: str) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, accuracy) of the augmented batches."""
    loop.module.train()
    trainable = [p for group in loop.optimizer.param_groups for p in group["params"]]
    totals = Totals()
    for batch in tqdm(loader, desc=desc, leave=False, mininterval=5):
        logits, labels, _ = forward_batch(loop.module, batch, loop.device, loop.precision, spec.augment)
        loss = F.cross_entropy(
            logits, labels, ignore_index=IGNORE_INDEX, label_smoothing=spec.label_smoothing
        )
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        if spec.grad_clip > 0:
            loop.scaler.unscale_(loop.optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(trainable, spec.grad_clip)
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.scheduler.step()
        totals.add(logits.detach(), labels, loss.detach() * int((labels != IGNORE_INDEX).sum()))
    return totals.means()


@torch.no_grad()
def evaluate(module: nn.Module, loader, device: torch.device, precision: str) -> tuple[float, float]:
    """(mean loss over in-vocabulary answers, accuracy over all questions) without augmentation."""
    module.eval()
    totals = Totals()
    for batch in loader:
        logits, labels, _ = forward_batch(module, batch, device, precision)
        loss_sum = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        totals.add(logits, labels, loss_sum)
    return totals.means()


def _fresh_state(spec: TrainSpec, model: BuiltModel, data: TrainData) -> dict[str, Any]:
    return {
        "family": model.family, "args": model.args, "answers": list(data.answers), "spec": spec.to_dict(),
        "epoch": 0, "best_epoch": 0, "best_val_accuracy": -1.0, "epochs_since_best": 0,
    }


def _resume(resume_dir: Path, state: dict[str, Any], loop: Loop) -> tuple[dict[str, Any], list[dict]]:
    """The state and history to continue from: the last finished epoch of a matching run, or a fresh start."""
    if not checkpoint.can_resume(resume_dir, state, RESUME_FREE_KEYS):
        return state, []
    saved, training, history = checkpoint.load_progress(resume_dir, loop.module)
    loop.optimizer.load_state_dict(training["optimizer"])
    loop.scheduler.load_state_dict(training["scheduler"])
    if loop.scaler.is_enabled() and training["scaler"]:
        loop.scaler.load_state_dict(training["scaler"])
    log.info("resuming %s after epoch %d", resume_dir, saved["epoch"])
    return {**saved, "spec": state["spec"]}, history.to_dict("records")


def _after_epoch(state: dict[str, Any], epoch: int, val_accuracy: float) -> tuple[dict[str, Any], bool]:
    improved = val_accuracy > state["best_val_accuracy"]
    if improved:
        best = {"best_epoch": epoch, "best_val_accuracy": val_accuracy, "epochs_since_best": 0}
        return {**state, "epoch": epoch, **best}, True
    return {**state, "epoch": epoch, "epochs_since_best": state["epochs_since_best"] + 1}, False


def _training_state(loop: Loop) -> dict[str, Any]:
    return {
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict(),
    }


def train(spec: TrainSpec, model: BuiltModel, data: TrainData, out_dir: str | Path) -> dict[str, Any]:
    """Train ``model`` on ``data.train``, select on ``data.val``; returns the final state.json."""
    out_dir = Path(out_dir)
    resume_dir = out_dir / checkpoint.RESUME
    # A last batch of one sample would break BatchNorm in training mode: drop it.
    drop_last = len(data.train) % spec.batch_size == 1
    steps = len(data.train) // spec.batch_size if drop_last else math.ceil(len(data.train) / spec.batch_size)
    loop = make_loop(spec, model, steps)
    state, history = _resume(resume_dir, _fresh_state(spec, model, data), loop)
    trainable, total = count_parameters(loop.module)
    log.info("%s: %d of %d parameters trainable; %s, %s, %d steps per epoch",
             model.family, trainable, total, loop.device, loop.precision, steps)
    val_loader = make_loader(data.val, spec.batch_size, data.pad_id, shuffle=False, workers=spec.workers)
    for epoch in range(state["epoch"] + 1, spec.epochs + 1):
        if state["epochs_since_best"] >= spec.patience:
            log.info("early stop: validation accuracy not better for %d epochs", spec.patience)
            break
        start = time.perf_counter()
        # Each epoch's order depends only on (seed, epoch), so a resumed run sees the same batches.
        loader = make_loader(data.train, spec.batch_size, data.pad_id, True, spec.seed * 1_000_003 + epoch,
                             spec.workers, drop_last)
        train_loss, train_acc = train_epoch(spec, loop, loader, f"epoch {epoch}/{spec.epochs}")
        val_loss, val_acc = evaluate(loop.module, val_loader, loop.device, loop.precision)
        state, improved = _after_epoch(state, epoch, val_acc)
        seconds = time.perf_counter() - start
        values = (epoch, train_loss, train_acc, val_loss, val_acc, max(loop.scheduler.get_last_lr()), seconds)
        history.append(dict(zip(HISTORY_COLUMNS, values)))
        checkpoint.save_progress(resume_dir, loop.module, state, _training_state(loop),
                                 pd.DataFrame(history, columns=HISTORY_COLUMNS), improved)
        log.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f%s | %.1f s",
                 epoch, train_loss, train_acc, val_loss, val_acc, " (best)" if improved else "", seconds)
    checkpoint.finalise(resume_dir, out_dir, state)
    log.info("best validation accuracy %.4f at epoch %d", state["best_val_accuracy"], state["best_epoch"])
    return state
