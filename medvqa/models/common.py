"""The family interface (``ModelFamily``) and the types and small layers the families share.

A family is a frozen bundle of plain functions; classifier and generative families fill the
same slots, so the training engine (``medvqa.training.engine``) and the prediction stage
(``medvqa.inference.predict``) call only these and never ask which family they hold:

  builder_args(model_config, DataInfo) → args    JSON-able, saved in every checkpoint
  build(args, load_pretrained) → nn.Module       the module (pretrained weights on request)
  param_groups(module) → {"backbone", "head"}    the two learning-rate groups
  dataset(SplitPaths, answers) → Dataset         one split's items, read from the stage files
  collate(args, answers, pad_id) → fn(items)     training / validation batches
  score(module, batch, Step) → BatchScore        the loss to minimise (+ accuracy, classifiers)
  predict(module, args, answers, Dataset, PredictRun) → (DataFrame, attention | None)

plus ``monitor`` (the validation metric that selects the best epoch: ``val_accuracy`` is
maximised, ``val_loss`` minimised), ``saves`` (which tensors a checkpoint holds: ``all``, or
``trainable`` when the frozen rest is reloaded from the pretrained checkpoint) and an
optional ``export(module, args, out_dir)`` that writes the best model in its ecosystem's own format
under ``out_dir`` (a PEFT adapter, a ``save_pretrained`` directory), in the subdirectory named by
``medvqa.families.FAMILIES[family].export_dir``.

A zero-shot run (``finetuned(args)`` false: the entry had no ``train:`` block) holds no weights;
its model is ``build(args, load_pretrained=True)`` as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from medvqa.models.specs import AugmentSpec, GenerationSpec
from medvqa.spec import Spec

log = logging.getLogger(__name__)

MONITORS = ("val_accuracy", "val_loss")
SAVES = ("all", "trainable")


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """Facts about the training data that size a model."""

    n_answers: int  # classes: len(answers.json["answers"])
    image_size: int  # side of the cached square images, px
    vocab_size: int | None = None  # word vocabulary size (tokenizer kind "words"), else None
    pad_id: int = 0  # id the collator pads questions with (masked out by attention_mask)


class Step(NamedTuple):
    """What ``score`` needs besides the module and the batch."""

    device: torch.device
    training: bool  # a training step (augmentation, label smoothing) or an evaluation
    augment: AugmentSpec | None = None  # classifier families: image augmentation of training batches
    label_smoothing: float = 0.0  # classifier families: of the training cross-entropy


class BatchScore(NamedTuple):
    loss: torch.Tensor  # scalar: mean loss over the scored targets (what backward() gets)
    scored: int  # targets in that mean: questions with an in-vocabulary answer, or answer tokens
    seen: int  # questions in the batch
    correct: int | None  # questions answered right (classifiers); None: the family has no accuracy


class PredictRun(NamedTuple):
    """Run settings of the prediction stage (``predict:`` of the config + a model's ``generate:``)."""

    device: torch.device
    batch_size: int = 64  # classifiers' batch (generative families: generation.batch_size)
    top_k: int = 5  # classifiers: answers with probabilities kept per question
    generation: GenerationSpec = GenerationSpec()  # generative families: how answers are decoded


def finetuned(args: Mapping[str, Any]) -> bool:
    """Whether a run's model was trained (its builder args lack ``finetune: false``)."""
    return bool(args.get("finetune", True))


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    spec: type[Spec]  # the ``model:`` sub-mapping (checked without loading any weights)
    builder_args: Callable[[Mapping[str, Any], DataInfo], dict[str, Any]]
    build: Callable[[Mapping[str, Any], bool], nn.Module]  # (args, load_pretrained) → module
    param_groups: Callable[[nn.Module], dict[str, list[nn.Parameter]]]
    dataset: Callable[[Any, Sequence[str]], Dataset]  # (medvqa.models.batch.SplitPaths, answers)
    collate: Callable[[Mapping[str, Any], Sequence[str], int], Callable[[list], Any]]
    score: Callable[[nn.Module, Any, Step], BatchScore]
    predict: Callable[[nn.Module, Mapping[str, Any], Sequence[str], Dataset, PredictRun],
                      tuple[pd.DataFrame, Any]]
    monitor: str = "val_accuracy"  # val_accuracy (higher is better) | val_loss (lower is better)
    saves: str = "all"  # all | trainable
    export: Callable[[nn.Module, Mapping[str, Any], Path], None] | None = None

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS or self.saves not in SAVES:
            raise ValueError(f"monitor must be one of {MONITORS} and saves one of {SAVES}")


class VQAOutput(NamedTuple):
    logits: torch.Tensor  # (B, n_answers)
    attention: torch.Tensor | None  # (B, h, w) question-guided attention over the image, if any


def resolve_device(name: str) -> torch.device:
    """auto → cuda when a GPU is present, else cpu; anything else as torch names it (cuda:1)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """auto → bfloat16 on CUDA (without a device: whenever a GPU is present), else float32;
    anything else as torch names it (float16)."""
    if name == "auto":
        cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, name)


def autocast(device: torch.device, precision: str):
    """Mixed precision on CUDA for bf16/fp16; a no-op context for fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto → bf16 (fp16 on GPUs without bf16) on CUDA, fp32 on CPU; half precision needs CUDA."""
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            log.warning("precision %s needs CUDA; training in fp32 on %s", precision, device)
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def place(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` on ``device``; a module already there (e.g. 4-bit weights loaded onto the GPU) stays."""
    if all(p.device == device for p in module.parameters()):
        return module
    return module.to(device)


class Normalise(nn.Module):
    """images (B, 3, H, W) in [0, 1] → resized to ``size`` (if given) and standardised per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None = None):
        super().__init__()
        # Not persistent: the statistics come from the builder arguments, not the weights file.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.size is not None and images.shape[-2:] != (self.size, self.size):
            images = nn.functional.interpolate(
                images, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        return (images - self.mean) / self.std


def classifier_head(in_dim: int, hidden_dim: int, n_answers: int, dropout: float, norm: str) -> nn.Sequential:
    """Linear → BatchNorm/LayerNorm → activation → dropout → Linear over the answer vocabulary."""
    norm_layer = nn.BatchNorm1d(hidden_dim) if norm == "batch" else nn.LayerNorm(hidden_dim)
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        norm_layer,
        nn.ReLU() if norm == "batch" else nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, n_answers),
    )
