"""Training and prediction stages of the ``vlm_sft`` family.

Training: train/val examples (split parquet + image cache, see ``vlm_collate``) →
``results/models/{dataset}/{model}/{seed}/``:
  adapter_config.json, adapter_model.safetensors   the LoRA adapter of the best validation loss
                                                   (PeftModel.save_pretrained; absent for zero-shot)
  state.json    family, model spec, train spec, steps, best epoch and validation loss
  history.csv   epoch, step, train_loss, val_loss, lr, seconds
A zero-shot entry (``finetune: false``) trains nothing and writes state.json only, so both entries
flow through the same DAG.

Prediction: a split's examples + that directory →
``results/predictions/{dataset}/{model}/{seed}/{split}.parquet`` (schema in ``medvqa.generation``).
The model is rebuilt from state.json alone (base checkpoint + adapter).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from medvqa.generation import GenerationSpec, generate_answers, write_predictions
from medvqa.io import read_json, write_csv, write_json
from medvqa.models.vlm_collate import VlmCollator, load_examples
from medvqa.models.vlm_sft import (
    VlmSftSpec, build_vlm, describe, generation_stop_ids, load_vlm, model_type_of, prompt_format,
)
from medvqa.spec import Spec, check_range
from medvqa.training.seed import seed_everything

log = logging.getLogger(__name__)

FAMILY = "vlm_sft"
STATE, HISTORY, BEST = "state.json", "history.csv", ".best_adapter"


@dataclasses.dataclass(frozen=True)
class VlmTrainSpec(Spec):
    """The ``train:`` sub-mapping of a ``vlm_sft`` config entry (``seed`` comes from the wildcard)."""

    epochs: int = 1  # passes over the train split
    max_steps: int | None = None  # stop after this many optimizer steps (None = all epochs)
    batch_size: int = 4  # examples per forward pass
    grad_accum: int = 1  # forward passes per optimizer step (effective batch = batch_size × grad_accum)
    lr: float = 2e-4  # peak learning rate of the LoRA weights
    weight_decay: float = 0.0  # AdamW decay
    warmup: float = 0.03  # fraction of the optimizer steps with linear warmup
    min_lr: float = 0.0  # final learning rate (cosine decay) as a fraction of the peak
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    eval_batch_size: int = 8  # examples per validation forward pass
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 0  # DataLoader worker processes
    seed: int = 0

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "eval_batch_size"):
            check_range(where, key, getattr(self, key), 1)
        if self.max_steps is not None:
            check_range(where, "max_steps", self.max_steps, 1)
        for key in ("lr", "weight_decay", "grad_clip", "workers"):
            check_range(where, key, getattr(self, key), 0)
        for key in ("warmup", "min_lr"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr: float) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine decay to ``min_lr``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def optimizer_steps(spec: VlmTrainSpec, n_examples: int) -> int:
    per_epoch = math.ceil(math.ceil(n_examples / spec.batch_size) / spec.grad_accum)
    total = per_epoch * spec.epochs
    return min(total, spec.max_steps) if spec.max_steps else total


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate_loss(model, loader, device: torch.device) -> float:
    """Mean answer-token loss over ``loader`` (weighted by each batch's answer tokens)."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in loader:
        batch = to_device(batch, device)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**batch, use_cache=False).loss) * n
        tokens += n
    return total / max(tokens, 1)


def train_epoch(model, loader, optimizer, scheduler, spec: VlmTrainSpec, step: int, total: int) -> tuple[float, int]:
    """One pass; returns (mean training loss, optimizer steps so far)."""
    model.train()
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for i, batch in enumerate(loader):
        # No KV cache in training: it is unused and clashes with gradient checkpointing.
        loss = model(**to_device(batch, device), use_cache=False).loss
        (loss / spec.grad_accum).backward()
        losses.append(loss.item())
        if (i + 1) % spec.grad_accum and i + 1 < len(loader):
            continue
        if spec.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step >= total:
            break
    return sum(losses) / max(len(losses), 1), step


def make_optimizer(model, spec: VlmTrainSpec, total: int):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    warmup_steps = max(1, round(spec.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps, total, spec.min_lr)
    )
    return optimizer, scheduler


def train_vlm(
    spec: VlmSftSpec, train_spec: VlmTrainSpec, model, processor,
    train_rows: Sequence[Mapping], val_rows: Sequence[Mapping], out_dir: str | Path,
) -> dict[str, Any]:
    """Fine-tune the LoRA adapter of ``model`` (from ``build_vlm``); returns the written state.

    Rows are example dicts (``vlm_collate.CachedVqaExamples`` items: id, image, question, answer).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {"family": FAMILY, "model": spec.to_dict(), "train": train_spec.to_dict(), **describe(model)}
    if not spec.finetune:
        write_json({**state, "steps": 0}, out_dir / STATE)
        return state
    seed_everything(train_spec.seed)
    collate = VlmCollator(processor, prompt_format(spec, processor, model_type_of(model)))
    generator = torch.Generator().manual_seed(train_spec.seed)
    loader = DataLoader(train_rows, train_spec.batch_size, shuffle=True, collate_fn=collate,
                        num_workers=train_spec.workers, generator=generator)
    val_loader = DataLoader(val_rows, train_spec.eval_batch_size, collate_fn=collate, num_workers=train_spec.workers)
    total = optimizer_steps(train_spec, len(train_rows))
    optimizer, scheduler = make_optimizer(model, train_spec, total)
    history, best, step = [], {"epoch": None, "val_loss": math.inf}, 0
    for epoch in range(1, train_spec.epochs + 1):
        start = time.time()
        train_loss, step = train_epoch(model, loader, optimizer, scheduler, train_spec, step, total)
        val_loss = evaluate_loss(model, val_loader, next(model.parameters()).device) if len(val_rows) else train_loss
        history.append({"epoch": epoch, "step": step, "train_loss": train_loss, "val_loss": val_loss,
                        "lr": scheduler.get_last_lr()[0], "seconds": time.time() - start})
        log.info("epoch %d step %d: train loss %.4f, val loss %.4f", epoch, step, train_loss, val_loss)
        if val_loss < best["val_loss"]:
            best = {"epoch": epoch, "val_loss": val_loss}
            model.save_pretrained(out_dir / BEST)
        if step >= total:
            break
    if not (out_dir / BEST).exists():  # no finite validation loss: keep the last adapter
        model.save_pretrained(out_dir / BEST)
    return _finalise(out_dir, {**state, "steps": step, "best": best}, history)


def _finalise(out_dir: Path, state: dict[str, Any], history: list[dict]) -> dict[str, Any]:
    """Move the best adapter into ``out_dir``; state.json is written last, marking a complete run."""
    for path in (out_dir / BEST).iterdir():
        shutil.move(str(path), out_dir / path.name)
    shutil.rmtree(out_dir / BEST)
    write_csv(pd.DataFrame(history), out_dir / HISTORY)
    write_json(state, out_dir / STATE)
    return state


def load_trained(model_dir: str | Path, device: str | torch.device = "cpu"):
    """(model, processor, spec) rebuilt from a training run directory alone."""
    state = read_json(Path(model_dir) / STATE)
    spec = VlmSftSpec.from_mapping(state["model"], f"{model_dir}/{STATE}")
    model, processor = load_vlm(spec, model_dir, device)
    return model, processor, spec


def predict_vlm(
    spec: VlmSftSpec, gen_spec: GenerationSpec, model, processor, examples: Sequence[Mapping], out_path: str | Path,
) -> pd.DataFrame:
    """Generate an answer (+ probabilities, samples) for every example → predictions parquet."""
    fmt = prompt_format(spec, processor, model_type_of(model))
    collate = VlmCollator(processor, fmt, with_labels=False, padding_side="left")
    stops = generation_stop_ids(model, processor, fmt)
    results = generate_answers(model, collate, examples, processor.tokenizer, gen_spec, stops)
    write_predictions(results, out_path, gen_spec.confidence)
    return pd.read_parquet(out_path)


def run_training(model_config: Mapping[str, Any], train_paths: Sequence, val_paths: Sequence,
                 out_dir: str | Path, seed: int) -> dict[str, Any]:
    """Workflow entry: ``{"model": {...}, "train": {...}}`` + (parquet, npy, ids.json) paths of train and val."""
    spec = VlmSftSpec.from_mapping(model_config.get("model"), "vlm_sft.model")
    train_spec = VlmTrainSpec.from_mapping({**model_config.get("train", {}), "seed": seed}, "vlm_sft.train")
    seed_everything(seed)
    model, processor = build_vlm(spec, resolve_device(train_spec.device))
    train_rows, val_rows = load_examples(*train_paths), load_examples(*val_paths)
    return train_vlm(spec, train_spec, model, processor, train_rows, val_rows, out_dir)


def run_prediction(model_dir: str | Path, predict_config: Mapping[str, Any], split_paths: Sequence,
                   out_path: str | Path, seed: int, device: str = "auto") -> pd.DataFrame:
    """Workflow entry: a run directory + (parquet, npy, ids.json) of one split → predictions parquet."""
    seed_everything(seed)  # the sampled answers are reproducible
    gen_spec = GenerationSpec.from_mapping(predict_config, "vlm_sft.predict")
    model, processor, spec = load_trained(model_dir, resolve_device(device))
    return predict_vlm(spec, gen_spec, model, processor, load_examples(*split_paths), out_path)
