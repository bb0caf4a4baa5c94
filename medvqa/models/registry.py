"""The model families, in one literal dict.

A family (``medvqa.models.common.ModelFamily``) is a frozen bundle of plain functions; the
classifier families (``cnn_lstm``, ``clip_classifier``: logits over answers.json) and the
generative ones (``flamingo``, ``blip``, ``vlm_sft``: answers as generated text) fill the same
slots, and one training engine and one prediction stage drive them all.
``builder_args`` turns a config's ``model:`` sub-mapping plus facts about the data
(``DataInfo``) into JSON-able builder arguments; ``build`` turns those arguments into an
``nn.Module``. The arguments are saved in every checkpoint, so prediction rebuilds the model
from the checkpoint directory alone (``rebuild_model`` followed by loading the saved weights).

What the workflow needs to know of each family without torch (its config spec, generative or
not, attention maps, caption kind, host memory) is in ``medvqa.families.FAMILIES``, under the
same keys; that module's docstring lists the places a new family touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import nn

from medvqa.models import blip, clip_classifier, cnn_lstm, flamingo, vlm_sft
from medvqa.models.common import DataInfo, ModelFamily, VQAOutput, finetuned
from medvqa.spec import ConfigError

__all__ = [
    "MODEL_FAMILIES", "BuiltModel", "DataInfo", "ModelFamily", "VQAOutput", "build_model", "rebuild_model",
]


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "cnn_lstm": cnn_lstm.FAMILY,
    "clip_classifier": clip_classifier.FAMILY,
    "flamingo": flamingo.FAMILY,
    "blip": blip.FAMILY,
    "vlm_sft": vlm_sft.FAMILY,
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
    """The architecture of a saved model, ready for its saved weights.

    A family that saves every weight is rebuilt without fetching pretrained weights (they get
    overwritten); one that saves only its trainable tensors reloads the frozen rest from the
    pretrained checkpoint named in ``args``; a zero-shot run (no weights saved) loads all of it.
    """
    load_pretrained = family_of(family).saves == "trainable" or not finetuned(args)
    return BuiltModel(family, dict(args), family_of(family).build(args, load_pretrained))


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total
