"""The ``train:`` sub-mapping of a model entry, shared by every family — no torch import, so the
workflow can check it at start-up (``medvqa.workflow_config``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medvqa.spec import ConfigError, Spec, check_choice, check_range

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class AugmentSpec(Spec):
    """Tensor augmentation of the cached images (classifier families; see ``training.augment``)."""

    enabled: bool = True  # false = the images as cached
    crop_scale: float = 0.8  # smallest area fraction of the random resized crop (1 = no crop)
    crop_ratio: float = 1.25  # largest aspect-ratio change of the crop (1 = square crops)
    rotation: float = 10.0  # largest rotation, degrees
    flip: bool = False  # random horizontal flip (swaps left and right!)
    brightness: float = 0.2  # brightness factor drawn from [1 - b, 1 + b]
    contrast: float = 0.2  # contrast factor drawn from [1 - c, 1 + c]
    saturation: float = 0.0  # saturation factor drawn from [1 - s, 1 + s]

    def validate(self, where: str) -> None:
        check_range(where, "crop_scale", self.crop_scale, 0.05, 1.0)
        check_range(where, "crop_ratio", self.crop_ratio, 1.0, 4.0)
        check_range(where, "rotation", self.rotation, 0.0, 180.0)
        for key in ("brightness", "contrast", "saturation"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)


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
