"""The ``train:`` sub-mapping of a model entry, shared by every family — no torch import, so the
workflow can check it at start-up (``medvqa.workflow_config``). ``AugmentSpec`` and ``PRECISIONS``
live with the model specs (``medvqa.models.specs``): prediction and the augmentation share them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medvqa.models.specs import PRECISIONS, AugmentSpec
from medvqa.spec import ConfigError, Spec, check_choice, check_range

METHODS = ("sft", "grpo")
REWARD_NAMES = ("correctness", "token_f1", "format")  # the keys of medvqa.training.rewards.REWARDS


@dataclasses.dataclass(frozen=True)
class GrpoSpec(Spec):
    """The ``train.grpo:`` settings of a ``method: grpo`` run (``medvqa.training.grpo``)."""

    group_size: int = 4  # completions sampled per question; advantages are normalised within each group (>= 2)
    beta: float = 0.04  # KL coefficient to the reference (the base model: adapter disabled); 0 = no KL term
    temperature: float = 1.0  # sampling temperature of the completions (> 0)
    max_completion_length: int = 16  # most generated tokens per completion
    max_steps: int | None = None  # optimizer steps; None = epochs × ceil(train questions / batch_size)
    save_steps: int = 50  # steps between resumable checkpoints in resume/ (a killed job loses fewer)
    rewards: dict = dataclasses.field(  # reward name → weight of its term in the total reward
        default_factory=lambda: {"correctness": 1.0, "token_f1": 1.0, "format": 0.2})
    protocol: str = "exact_match"  # scoring protocol of the correctness reward (evaluate/protocols.py)
    max_answer_words: int = 8  # the format reward's longest answer, in words

    def validate(self, where: str) -> None:
        check_range(where, "group_size", self.group_size, 2)
        check_range(where, "beta", self.beta, 0.0)
        if not self.temperature > 0:
            raise ConfigError(f"{where}: temperature={self.temperature!r} must be > 0")
        for key in ("max_completion_length", "save_steps", "max_answer_words"):
            check_range(where, key, getattr(self, key), 1)
        if self.max_steps is not None:
            check_range(where, "max_steps", self.max_steps, 1)
        for name, weight in self.rewards.items():
            if name not in REWARD_NAMES:
                raise ConfigError(f"{where}.rewards: unknown reward {name!r}; choose from {', '.join(REWARD_NAMES)}")
            check_range(f"{where}.rewards", name, weight, 0.0)
        if not any(self.rewards.values()):
            raise ConfigError(f"{where}: rewards needs at least one positive weight")
        from medvqa.evaluate.protocols import PROTOCOLS  # numpy only; imported when a GRPO entry is checked

        check_choice(where, "protocol", self.protocol, tuple(PROTOCOLS))


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
    method: str = "sft"  # sft: supervised on the answers | grpo: reinforcement with rewards (vlm_sft LoRA only)
    init_from: str | None = None  # a trained vlm_sft entry (same model:) whose adapter this run starts from
    grpo: GrpoSpec = dataclasses.field(default_factory=GrpoSpec)  # method: grpo only

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, where: str = "") -> TrainSpec:
        mapping = dict(mapping or {})
        where = where or cls.__name__
        mapping["augment"] = AugmentSpec.from_mapping(mapping.get("augment"), f"{where}.augment")
        # A spec's to_dict() carries the default grpo block; only other settings need method: grpo.
        if mapping.get("method") != "grpo" and mapping.get("grpo") not in (None, GrpoSpec(), GrpoSpec().to_dict()):
            raise ConfigError(f"{where}: grpo settings need method: grpo")
        # Only a GRPO entry's settings are checked (that check reads the protocol registry).
        grpo = mapping.get("method") == "grpo"
        mapping["grpo"] = GrpoSpec.from_mapping(mapping.get("grpo"), f"{where}.grpo") if grpo else GrpoSpec()
        return super().from_mapping(mapping, where)

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "patience", "gpus"):
            check_range(where, key, getattr(self, key), 1)
        for key in ("lr", "backbone_lr", "weight_decay", "grad_clip", "workers"):
            check_range(where, key, getattr(self, key), 0)
        for key in ("warmup", "min_lr", "label_smoothing"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)
        check_choice(where, "precision", self.precision, PRECISIONS)
        check_choice(where, "method", self.method, METHODS)
        if self.method == "grpo" and self.gpus > 1:
            raise ConfigError(f"{where}: method grpo trains on one device; set gpus: 1")
        if self.batch_size % self.gpus:
            raise ConfigError(f"{where}: batch_size {self.batch_size} is not divisible by gpus {self.gpus}")
