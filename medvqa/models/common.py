"""Types and small layers shared by the classifier families."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from medvqa.spec import Spec


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """Facts about the training data that size a model."""

    n_answers: int  # classes: len(answers.json["answers"])
    image_size: int  # side of the cached square images, px
    vocab_size: int | None = None  # word vocabulary size (tokenizer kind "words"), else None
    pad_id: int = 0  # id the collator pads questions with (masked out by attention_mask)


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    token_kind: str  # the tokenizer kind its questions must be encoded with: "words" | "hf"
    spec: type[Spec]  # the family's ``model:`` sub-mapping (checked without loading any weights)
    # (the config's model: sub-mapping, data facts) → JSON-able builder arguments
    builder_args: Callable[[Mapping[str, Any], DataInfo], dict[str, Any]]
    build: Callable[[Mapping[str, Any], bool], nn.Module]  # (args, load_pretrained) → module
    # {"backbone": [...], "head": [...]}: the two learning-rate groups of the parameters
    param_groups: Callable[[nn.Module], dict[str, list[nn.Parameter]]]


class VQAOutput(NamedTuple):
    logits: torch.Tensor  # (B, n_answers)
    attention: torch.Tensor | None  # (B, h, w) question-guided attention over the image, if any


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
