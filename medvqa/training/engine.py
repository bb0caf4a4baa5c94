"""The one training loop, shared by every model family.

``train(spec, model, data, out_dir)``: AdamW with a backbone and a head learning rate,
linear warmup + cosine decay, gradient accumulation and clipping, fp32/bf16/fp16
(GradScaler) precision, early stopping on the family's validation metric (``val_accuracy``
for the classifiers, ``val_loss`` for the generative families), a checkpoint every epoch and
resumption of a killed run. Under ``torchrun`` it trains data-parallel over the processes (see
``medvqa.training.distributed``: ``batch_size`` is the global batch; only rank 0 writes). What a batch is and what its loss is come from the family
(``ModelFamily.collate`` and ``.score``); the loop never asks which family it trains. Writes
the files listed in ``medvqa.models.checkpoint`` under ``out_dir``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from medvqa.models import checkpoint
from medvqa.models.batch import make_loader
from medvqa.models.common import (
    BatchScore, ModelFamily, Step, autocast, place, resolve_device, resolve_precision,
)
from medvqa.models.registry import BuiltModel, count_parameters, family_of
from medvqa.models.specs import PRECISIONS
from medvqa.training import distributed
from medvqa.training.spec import TrainSpec

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "TrainData", "TrainSpec", "resolve_precision", "train"]

ACCURACY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
LOSS_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")
# Spec keys that may change between a killed run and its re-run (more epochs, another machine).
RESUME_FREE_KEYS = ("epochs", "patience", "device", "workers", "gpus")


class TrainData(NamedTuple):
    train: Dataset  # the family's dataset of the train split
    val: Dataset
    answers: list[str]  # answers.json["answers"]: class index → answer (empty for captions)
    collate: Callable[[Sequence], Any]  # the family's collate function (items → batch)
    # Stamps of the files the data and the pretrained model were read from (medvqa.io.file_stamp):
    # progress saved under other stamps is stale, and a re-run starts afresh.
    inputs: Mapping[str, Any] = {}


def history_columns(family: ModelFamily) -> tuple[str, ...]:
    """history.csv columns: loss and accuracy for classifiers, loss only for generative families."""
    return ACCURACY_COLUMNS if family.monitor == "val_accuracy" else LOSS_COLUMNS


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


class Totals:
    """Running sums of loss (weighted by scored targets) and, when the family has one, accuracy."""

    def __init__(self) -> None:
        self.loss = self.scored = self.seen = 0.0
        self.correct: float | None = 0.0

    def add(self, score: BatchScore) -> None:
        self.loss += float(score.loss.detach()) * score.scored
        self.scored += score.scored
        self.seen += score.seen
        self.correct = None if score.correct is None or self.correct is None else self.correct + score.correct

    def summed_over_processes(self, device: torch.device) -> Totals:
        """The totals of every process (the same on each; itself without torchrun)."""
        correct = -1.0 if self.correct is None else self.correct  # every family answers the same way
        self.loss, self.scored, self.seen, correct = distributed.sum_over_processes(
            [self.loss, self.scored, self.seen, correct], device)
        self.correct = None if self.correct is None else correct
        return self

    def means(self) -> tuple[float, float | None]:
        accuracy = None if self.correct is None else self.correct / max(1, self.seen)
        return self.loss / max(1, self.scored), accuracy


class Loop(NamedTuple):
    """What every training step needs."""

    family: ModelFamily
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    precision: str


def make_loop(spec: TrainSpec, model: BuiltModel, steps_per_epoch: int) -> Loop:
    device = distributed.local_device(resolve_device(spec.device))
    precision = resolve_precision(spec.precision, device)
    module = distributed.prepare_module(place(model.module, device))
    optimizer = make_optimizer(spec, model)
    scheduler = make_scheduler(optimizer, spec, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Loop(family_of(model.family), module, optimizer, scheduler, scaler, device, precision)


def optimizer_step(spec: TrainSpec, loop: Loop, trainable: list[nn.Parameter]) -> None:
    distributed.average_gradients(trainable)  # before unscaling: every rank has the same scale
    if spec.grad_clip > 0:
        loop.scaler.unscale_(loop.optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(trainable, spec.grad_clip)
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)


def train_epoch(spec: TrainSpec, loop: Loop, loader, desc: str) -> tuple[float, float | None]:
    """One pass over the training data; returns (mean loss, accuracy or None) of its batches.

    Gradients of ``spec.grad_accum`` batches are summed before each optimizer step (the last
    step of an epoch may take fewer).
    """
    loop.module.train()
    trainable = [p for group in loop.optimizer.param_groups for p in group["params"]]
    step = Step(loop.device, True, spec.augment, spec.label_smoothing)
    totals = Totals()
    loop.optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=desc, leave=False, mininterval=5, disable=not distributed.is_main())
    for i, batch in enumerate(bar):
        with autocast(loop.device, loop.precision):
            score = loop.family.score(loop.module, batch, step)
        loop.scaler.scale(score.loss / spec.grad_accum).backward()
        if (i + 1) % spec.grad_accum == 0 or i + 1 == len(loader):
            optimizer_step(spec, loop, trainable)
        totals.add(score)
    return totals.summed_over_processes(loop.device).means()


@torch.no_grad()
def evaluate(family: ModelFamily, module: nn.Module, loader, device: torch.device, precision: str):
    """(mean loss, accuracy or None) over ``loader`` without augmentation."""
    module.eval()
    totals = Totals()
    for batch in loader:
        with autocast(device, precision):
            totals.add(family.score(module, batch, Step(device, False)))
    return totals.summed_over_processes(device).means()


def fresh_state(
    spec: TrainSpec, family: str, args: dict[str, Any], answers: Sequence[str],
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """state.json before the first epoch (what a resumed run must match, and the best so far)."""
    monitor = family_of(family).monitor
    return {
        "family": family, "args": args, "answers": list(answers), "spec": spec.to_dict(),
        "inputs": dict(inputs or {}), "monitor": monitor,
        "epoch": 0, "best_epoch": 0, f"best_{monitor}": None, "epochs_since_best": 0,
    }


def _resume(resume_dir: Path, state: dict[str, Any], loop: Loop) -> tuple[dict[str, Any], list[dict]]:
    """The state and history to continue from: the last finished epoch of a matching run, or a fresh start."""
    if not checkpoint.can_resume(resume_dir, state, RESUME_FREE_KEYS):
        return state, []
    trainable_only = loop.family.saves == "trainable"
    saved, training, history = checkpoint.load_progress(resume_dir, loop.module, trainable_only)
    loop.optimizer.load_state_dict(training["optimizer"])
    loop.scheduler.load_state_dict(training["scheduler"])
    if loop.scaler.is_enabled() and training["scaler"]:
        loop.scaler.load_state_dict(training["scaler"])
    log.info("resuming %s after epoch %d", resume_dir, saved["epoch"])
    return {**saved, "spec": state["spec"]}, history.to_dict("records")


def _after_epoch(state: dict[str, Any], epoch: int, value: float) -> tuple[dict[str, Any], bool]:
    """Update the best epoch with this epoch's value of the monitored metric (strict improvements)."""
    key = f"best_{state['monitor']}"
    best = state[key]
    improved = best is None or (value > best if state["monitor"] == "val_accuracy" else value < best)
    if improved:
        return {**state, "epoch": epoch, "best_epoch": epoch, key: value, "epochs_since_best": 0}, True
    return {**state, "epoch": epoch, "epochs_since_best": state["epochs_since_best"] + 1}, False


def _training_state(loop: Loop) -> dict[str, Any]:
    return {
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict(),
    }


def _history_row(epoch: int, train: tuple, val: tuple, loop: Loop, seconds: float) -> dict[str, Any]:
    row = {"epoch": epoch, "train_loss": train[0], "train_accuracy": train[1], "val_loss": val[0],
           "val_accuracy": val[1], "lr": max(loop.scheduler.get_last_lr()), "seconds": seconds}
    return {key: row[key] for key in history_columns(loop.family)}


def _publish(loop: Loop, resume_dir: Path, out_dir: Path, state: dict[str, Any]) -> None:
    """The final outputs; a family with ``export`` also writes the best model in its own format."""
    checkpoint.finalise(resume_dir, out_dir, state)
    if loop.family.export is not None:
        checkpoint.load_weights(loop.module, out_dir / checkpoint.WEIGHTS, loop.family.saves == "trainable")
        loop.family.export(loop.module, out_dir)


class Batching(NamedTuple):
    """How one process batches the training split (the whole split without torchrun)."""

    batch_size: int  # examples per forward pass of this process: the global batch_size / processes
    drop_last: bool  # a last batch of one sample would break BatchNorm in training mode: drop it
    batches: int  # forward passes per epoch of this process


def batching(spec: TrainSpec, n_train: int) -> Batching:
    batch_size = distributed.per_process_batch(spec.batch_size)
    share = math.ceil(n_train / distributed.world_size())  # each rank's share, padded to be equal
    drop_last = share % batch_size == 1
    return Batching(batch_size, drop_last, share // batch_size if drop_last else math.ceil(share / batch_size))


def train_loader(spec: TrainSpec, data: TrainData, plan: Batching, epoch: int):
    """This process's batches of one epoch; the order depends only on (seed, epoch), so a resumed
    run sees the same batches, and the processes of a torchrun share the one-process order."""
    # An explicit permutation, not DataLoader(shuffle=True): the loader's generator is also
    # drawn from for each iterator it makes, and tqdm.auto makes an extra one.
    generator = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
    order = torch.randperm(len(data.train), generator=generator).tolist()
    return make_loader(data.train, plan.batch_size, data.collate, False, workers=spec.workers,
                       drop_last=plan.drop_last, sampler=distributed.ShardSampler(order))


def _save_epoch(loop: Loop, resume_dir: Path, state: dict, history: list[dict], improved: bool) -> None:
    """Rank 0 writes the epoch's checkpoint; every process waits for it (a resume reads it)."""
    if distributed.is_main():
        checkpoint.save_progress(resume_dir, loop.module, state, _training_state(loop),
                                 pd.DataFrame(history, columns=history_columns(loop.family)), improved,
                                 loop.family.saves == "trainable")
    distributed.barrier()


def train(spec: TrainSpec, model: BuiltModel, data: TrainData, out_dir: str | Path) -> dict[str, Any]:
    """Train ``model`` on ``data.train``, select on ``data.val``; returns the final state.json.

    Under torchrun every process calls this; each returns the same state, rank 0 writes the files.
    """
    out_dir, resume_dir = Path(out_dir), Path(out_dir) / checkpoint.RESUME
    plan = batching(spec, len(data.train))
    loop = make_loop(spec, model, math.ceil(plan.batches / spec.grad_accum))
    fresh = fresh_state(spec, model.family, model.args, data.answers, data.inputs)
    state, history = _resume(resume_dir, fresh, loop)
    monitor = loop.family.monitor
    trainable, total = count_parameters(loop.module)
    log.info("%s: %d of %d parameters trainable; %s, %s, %d batches of %d per epoch on each of %d processes, "
             "selected on %s", model.family, trainable, total, loop.device, loop.precision, plan.batches,
             plan.batch_size, distributed.world_size(), monitor)
    val_loader = make_loader(distributed.shard(data.val), plan.batch_size, data.collate, shuffle=False,
                             workers=spec.workers)
    for epoch in range(state["epoch"] + 1, spec.epochs + 1):
        if state["epochs_since_best"] >= spec.patience:
            log.info("early stop: %s not better for %d epochs", monitor, spec.patience)
            break
        start = time.perf_counter()
        loader = train_loader(spec, data, plan, epoch)
        train_scores = train_epoch(spec, loop, loader, f"epoch {epoch}/{spec.epochs}")
        val_scores = evaluate(loop.family, loop.module, val_loader, loop.device, loop.precision)
        row = _history_row(epoch, train_scores, val_scores, loop, time.perf_counter() - start)
        state, improved = _after_epoch(state, epoch, row[monitor])
        history.append(row)
        _save_epoch(loop, resume_dir, state, history, improved)
        log.info("epoch %d: %s%s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
                 " (best)" if improved else "")
    if distributed.is_main():
        _publish(loop, resume_dir, out_dir, state)
    distributed.barrier()
    log.info("best %s %.4f at epoch %d", monitor, state[f"best_{monitor}"], state["best_epoch"])
    return checkpoint.published(state)
