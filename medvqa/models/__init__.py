"""The classifier model families, in one literal dict.

A family (``medvqa.models.common.ModelFamily``) is a frozen bundle of plain functions.
``builder_args`` turns a config's ``model:`` sub-mapping plus facts about the data
(``DataInfo``) into JSON-able builder arguments;
``build`` turns those arguments into an ``nn.Module``. The arguments are saved in every
checkpoint, so prediction rebuilds the model from the checkpoint directory alone
(``build(args, load_pretrained=False)`` followed by loading the saved weights).

Every module's ``forward(images, input_ids, attention_mask)`` takes
images (B, 3, H, W) float in [0, 1], input_ids (B, L) int64, attention_mask (B, L) int64/bool
and returns ``VQAOutput(logits (B, n_answers), attention (B, h, w) or None)``.

Adding a family = one new module + one line in ``MODEL_FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import nn

from medvqa.models import clip_classifier, cnn_lstm
from medvqa.models.common import DataInfo, ModelFamily, VQAOutput
from medvqa.spec import ConfigError

__all__ = [
    "MODEL_FAMILIES", "BuiltModel", "DataInfo", "ModelFamily", "VQAOutput", "build_model", "rebuild_model",
]


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "cnn_lstm": cnn_lstm.FAMILY,
    "clip_classifier": clip_classifier.FAMILY,
}


class BuiltModel(NamedTuple):
    """A module together with what rebuilds it: the family name and the builder arguments."""

    family: str
    args: dict[str, Any]
    module: nn.Module


def family_of(name: str) -> ModelFamily:
    if name not in MODEL_FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[name]


def build_model(family: str, model_config: Mapping[str, Any], info: DataInfo) -> BuiltModel:
    """A new model for training: pretrained weights are loaded where the config asks for them."""
    args = family_of(family).builder_args(model_config, info)
    return BuiltModel(family, args, family_of(family).build(args, True))


def rebuild_model(family: str, args: Mapping[str, Any]) -> BuiltModel:
    """The architecture of a saved model, without fetching pretrained weights (they get overwritten)."""
    return BuiltModel(family, dict(args), family_of(family).build(args, False))


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total
