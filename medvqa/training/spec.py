"""The ``train:`` sub-mapping of a model entry, shared by every family — no torch import, so the
workflow can check it at start-up (``medvqa.workflow_config``). ``AugmentSpec`` and ``PRECISIONS``
live with the model specs (``medvqa.models.specs``): prediction and the augmentation share them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medvqa.models.specs import PRECISIONS, AugmentSpec
from medvqa.spec import ConfigError, Spec, check_choice, check_range


@dataclasses.dataclass(frozen=True)
class TrainSpec(Spec):
    """The ``train:`` sub-mapping of a model config (``seed`` comes from the {seed} wildcard)."""

    epochs: int = 20  # most epochs; early stopping may end sooner
    batch_size: int = 32  # examples per forward pass, in all: split evenly over the processes of a multi-GPU run
    gpus: int = 1  # > 1: the workflow trains under torchrun on this many GPUs (data-parallel; rule train_ddp)
    grad_accum: int = 1  # forward passes per optimizer step (effective batch = batch_size × grad_accum)
    lr: float = 1e-3  # peak learning rate of the new layers (LoRA adapters count as new)
    backbone_lr: float = 1e-4  # peak learning rate of the (pretrained) backbone
    weight_decay: float = 0.01  # AdamW decay of weight matrices (not of biases and norms)
    warmup: float = 0.05  # fraction of all steps with linear warmup
    min_lr: float = 0.0  # final learning rate as a fraction of the peak
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    label_smoothing: float = 0.0  # classifier families only
    patience: int = 5  # epochs without a better validation metric before stopping
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on CUDA, fp32 on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 0  # DataLoader worker processes
    seed: int = 0
    augment: AugmentSpec = dataclasses.field(default_factory=AugmentSpec)  # classifier families only

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, where: str = "") -> TrainSpec:
        mapping = dict(mapping or {})
        where = where or cls.__name__
        mapping["augment"] = AugmentSpec.from_mapping(mapping.get("augment"), f"{where}.augment")
        return super().from_mapping(mapping, where)

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "patience", "gpus"):
            check_range(where, key, getattr(self, key), 1)
        for key in ("lr", "backbone_lr", "weight_decay", "grad_clip", "workers"):
            check_range(where, key, getattr(self, key), 0)
        for key in ("warmup", "min_lr", "label_smoothing"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)
        check_choice(where, "precision", self.precision, PRECISIONS)
        if self.batch_size % self.gpus:
            raise ConfigError(f"{where}: batch_size {self.batch_size} is not divisible by gpus {self.gpus}")
