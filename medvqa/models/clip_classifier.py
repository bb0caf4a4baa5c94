"""Family ``clip_classifier``: a Hugging Face CLIP with everything frozen except the last N
vision and text blocks (with the final norms) and the two projections, and a light classifier
head over the fused image and question embeddings.

The checkpoint is ``CLIPModel.from_pretrained(path_or_hub_id)`` (e.g.
``openai/clip-vit-base-patch32`` or a ``results/pretrained/{name}`` directory). Questions are
ids of an ``hf`` tokenizer pointing at the same checkpoint; images are standardised with the
mean/std of the checkpoint's CLIPImageProcessor, applied to tensors inside the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from medvqa.models import classify
from medvqa.models.common import DataInfo, ModelFamily, Normalise, VQAOutput, classifier_head
from medvqa.models.specs import ClipClassifierSpec


def builder_args(model_config: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    """Spec + n_answers + the checkpoint's config and image statistics (so a rebuild needs no hub)."""
    from transformers import CLIPConfig, CLIPImageProcessor

    spec = ClipClassifierSpec.from_mapping(model_config, "clip_classifier model")
    config = CLIPConfig.from_pretrained(spec.checkpoint)
    processor = CLIPImageProcessor.from_pretrained(spec.checkpoint)
    return {
        **spec.to_dict(),
        "n_answers": info.n_answers,
        "clip_config": config.to_dict(),
        "image_mean": list(processor.image_mean),
        "image_std": list(processor.image_std),
        "image_size": config.vision_config.image_size,
    }


def load_clip(args: Mapping[str, Any], load_pretrained: bool):
    from transformers import CLIPConfig, CLIPModel

    if load_pretrained:
        return CLIPModel.from_pretrained(args["checkpoint"], dtype=torch.float32)
    return CLIPModel(CLIPConfig.from_dict(args["clip_config"]))


def freeze_all_but_top(clip: nn.Module, n_blocks: int) -> None:
    """Train only the last ``n_blocks`` of each tower (+ final norms) and the projections."""
    clip.requires_grad_(False)
    trained = [clip.visual_projection, clip.text_projection]
    if n_blocks > 0:
        trained += list(clip.vision_model.encoder.layers[-n_blocks:])
        trained += list(clip.text_model.encoder.layers[-n_blocks:])
        trained += [clip.vision_model.post_layernorm, clip.text_model.final_layer_norm]
    for module in trained:
        module.requires_grad_(True)


class ClipClassifier(nn.Module):
    def __init__(self, args: Mapping[str, Any], load_pretrained: bool):
        super().__init__()
        self.clip = load_clip(args, load_pretrained)
        freeze_all_but_top(self.clip, args["unfreeze_last"])
        self.normalise = Normalise(args["image_mean"], args["image_std"], args["image_size"])
        dim = self.clip.config.projection_dim
        # [image, question, image * question]: the product lets a linear head read agreement.
        self.fuse_norm = nn.LayerNorm(3 * dim)
        self.head = classifier_head(3 * dim, args["hidden_dim"], args["n_answers"], args["dropout"], "layer")

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        # The towers and projections are called directly: get_*_features changed return type
        # between transformers 4 and 5.
        vision = self.clip.vision_model(pixel_values=self.normalise(images))
        image = self.clip.visual_projection(vision.pooler_output)
        text = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask)
        question = self.clip.text_projection(text.pooler_output)
        fused = self.fuse_norm(torch.cat([image, question, image * question], dim=-1))
        return VQAOutput(self.head(fused), None)


def build(args: Mapping[str, Any], load_pretrained: bool) -> ClipClassifier:
    return ClipClassifier(args, load_pretrained)


def param_groups(model: ClipClassifier) -> dict[str, list[nn.Parameter]]:
    """The unfrozen CLIP blocks are the pretrained backbone; the head is new."""
    backbone = [p for p in model.clip.parameters() if p.requires_grad]
    ids = {id(p) for p in model.clip.parameters()}
    return {"backbone": backbone, "head": [p for p in model.parameters() if id(p) not in ids]}


FAMILY = ModelFamily(
    ClipClassifierSpec, builder_args, build, param_groups,
    classify.dataset, classify.collate, classify.score, classify.predict,
)
