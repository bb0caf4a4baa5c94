"""Family ``flamingo``: a frozen CLIP vision encoder → perceiver resampler → tanh-gated
cross-attention blocks interleaved into a frozen GPT-2, trained with the language-model loss
on the answer tokens (optionally plus a classification head over answers.json).

Checkpoints: ``CLIPVisionModel.from_pretrained(vision)`` (e.g. ``openai/clip-vit-base-patch32``)
and ``GPT2LMHeadModel.from_pretrained(lm)`` + its tokenizer (e.g. ``gpt2``), hub ids or
save_pretrained directories (``medvqa.demo.tiny_hf.write_tiny_clip_gpt2``). Only the resampler,
the cross-attention blocks (with their gates) and the classification head are trained, and only
they are saved (``FAMILY.saves == "trainable"``): a rebuild reloads CLIP and GPT-2 from their
checkpoints. The shared engine trains it on the LM loss and selects on the validation loss.

The GPT-2 blocks are run in this module's own loop (``FlamingoVQA.forward``) so the visual
tokens are an explicit argument of every layer. Sequences are left-padded; position ids count
real tokens only, so a padded row computes what it computes alone.

Batch (``collate``): images (B, H, W, 3) uint8; input_ids / attention_mask / labels (B, L) =
left-padded "prompt + answer + <eos>" with labels -100 on prompt and padding; prompt_ids /
prompt_mask (B, P) = the prompt alone, for generation; prompt_last (B,) = column of the last
prompt token in input_ids; class_labels (B,) = index in answers.json or -100; ids (list[str]).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from medvqa.data.answers import normalise_answer
from medvqa.models.common import DataInfo, ModelFamily, Normalise, PredictRun
from medvqa.models.flamingo_generate import predict
from medvqa.models.flamingo_layers import FlamingoLayer, GatedCrossAttention, PerceiverResampler
from medvqa.models.generative import (
    IGNORE_INDEX, TextImageSplit, generate_split, image_statistics, lm_score, pad_left, split_new_and_pretrained,
    stack_images, text_image_split, to_device,
)
from medvqa.models.augment import to_float
from medvqa.models.specs import FlamingoSpec
from medvqa.spec import ConfigError


def builder_args(model_config: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    """Spec + n_answers + both checkpoints' configs and the image statistics (a rebuild needs no hub)."""
    from transformers import AutoImageProcessor, CLIPVisionConfig, GPT2Config

    spec = FlamingoSpec.from_mapping(model_config, "flamingo model")
    vision_config = CLIPVisionConfig.from_pretrained(spec.vision)
    lm_config = GPT2Config.from_pretrained(spec.lm)
    for name, dim in (("CLIP", vision_config.hidden_size), ("GPT-2", lm_config.n_embd)):
        if dim % spec.heads:
            raise ConfigError(f"flamingo model: heads={spec.heads} does not divide the {name} width {dim}")
    if spec.max_prompt_tokens + spec.max_answer_tokens + 1 > lm_config.n_positions:
        raise ConfigError(
            "flamingo model: max_prompt_tokens + max_answer_tokens + 1 exceeds GPT-2's "
            f"{lm_config.n_positions} positions"
        )
    return {
        **spec.to_dict(),
        "n_answers": info.n_answers,
        "vision_config": vision_config.to_dict(),
        "lm_config": lm_config.to_dict(),
        **image_statistics(AutoImageProcessor.from_pretrained(spec.vision)),
    }


def load_backbones(args: Mapping[str, Any], load_pretrained: bool) -> tuple[nn.Module, nn.Module]:
    """(CLIPVisionModel, GPT2LMHeadModel): pretrained weights, or the saved architectures."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, GPT2Config, GPT2LMHeadModel

    if load_pretrained:
        return (
            CLIPVisionModel.from_pretrained(args["vision"], dtype=torch.float32),
            GPT2LMHeadModel.from_pretrained(args["lm"], dtype=torch.float32),
        )
    return (
        CLIPVisionModel(CLIPVisionConfig.from_dict(args["vision_config"])),
        GPT2LMHeadModel(GPT2Config.from_dict(args["lm_config"])),
    )


class FlamingoVQA(nn.Module):
    """Frozen vision encoder and GPT-2 parts, new resampler / gated blocks / optional head."""

    def __init__(self, vision: nn.Module, lm: nn.Module, args: Mapping[str, Any]):
        super().__init__()
        vision.requires_grad_(False)
        lm.requires_grad_(False)
        self.normalise = Normalise(args["image_mean"], args["image_std"], args["image_size"])
        self.vision = vision
        media_dim, dim = vision.config.hidden_size, lm.config.n_embd
        heads, ff_mult, every = args["heads"], args["ff_mult"], args["cross_attn_every"]
        self.resampler = PerceiverResampler(media_dim, args["num_latents"], args["resampler_depth"], heads, ff_mult)
        # GPT-2 taken apart: embeddings, blocks (each wrapped), final norm, tied output head.
        self.wte, self.wpe, self.drop = lm.transformer.wte, lm.transformer.wpe, lm.transformer.drop
        self.layers = nn.ModuleList(
            FlamingoLayer(block, GatedCrossAttention(dim, media_dim, heads, ff_mult) if (i + 1) % every == 0 else None)
            for i, block in enumerate(lm.transformer.h)
        )
        self.ln_f, self.lm_head = lm.transformer.ln_f, lm.lm_head
        self.lm_config = lm.config  # read by the attention-mask and KV-cache helpers
        self.classifier = nn.Linear(dim, args["n_answers"]) if args["answer_head"] == "classify" else None
        self.classifier_weight = float(args["classifier_weight"])

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float in [0, 1] → visual tokens (B, num_latents, vision width)."""
        features = self.vision(pixel_values=self.normalise(images)).last_hidden_state
        return self.resampler(features)

    def forward(self, media, input_ids, attention_mask, past_key_values=None) -> torch.Tensor:
        """media (B, L, vision width), input_ids (B, T), attention_mask (B, past + T) → hidden (B, T, dim).

        ``past_key_values``: a ``transformers.DynamicCache`` holding the first ``past`` tokens
        (incremental decoding), or None. Logits are ``self.lm_head(hidden)``.
        """
        from transformers.masking_utils import create_causal_mask

        embeds = self.wte(input_ids)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)[:, -input_ids.shape[1]:]
        mask = create_causal_mask(
            config=self.lm_config, inputs_embeds=embeds, attention_mask=attention_mask,
            past_key_values=past_key_values, position_ids=position_ids,
        )
        hidden = self.drop(embeds + self.wpe(position_ids))
        for layer in self.layers:
            hidden = layer(hidden, media, mask, position_ids, past_key_values)
        return self.ln_f(hidden)


def build(args: Mapping[str, Any], load_pretrained: bool) -> FlamingoVQA:
    vision, lm = load_backbones(args, load_pretrained)
    return FlamingoVQA(vision, lm, args)


def param_groups(model: FlamingoVQA) -> dict[str, list[nn.Parameter]]:
    """Everything trainable is new (the backbones are frozen): one "head" group."""
    blocks = [layer.block for layer in model.layers]
    return split_new_and_pretrained(model, [model.vision, model.wte, model.wpe, *blocks, model.ln_f])


def load_tokenizer(args: Mapping[str, Any]):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(args["lm"])


def target_text(example: Mapping[str, Any]) -> str | None:
    """What to learn: the normalised answer (as in answers.json), or the caption as written."""
    if example.get("answer") is not None:
        return normalise_answer(example["answer"])
    return None if example.get("caption") is None else str(example["caption"]).strip()


def collate(
    examples: Sequence[Mapping[str, Any]], tokenizer, args: Mapping[str, Any], answers: Sequence[str] = ()
) -> dict[str, Any]:
    """Examples (``medvqa.models.generative``) → the batch described in the module docstring.

    Prompt and target are tokenised separately, so the label mask starts exactly at the
    first answer token (" " + answer, as GPT-2 sees a word after a space, then <eos>).
    An example without a target gets no target tokens (prediction only).
    """
    eos = tokenizer.eos_token_id
    pad = eos if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    prompts = [args["prompt"].format(question=e.get("question", "")) for e in examples]
    prompt_ids = [ids[-args["max_prompt_tokens"]:] for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    texts = [target_text(e) for e in examples]
    encoded = tokenizer([" " + (text or "") for text in texts], add_special_tokens=False)["input_ids"]
    targets = [[] if text is None else ids[: args["max_answer_tokens"]] + [eos] for text, ids in zip(texts, encoded)]
    input_ids, attention_mask = pad_left([p + t for p, t in zip(prompt_ids, targets)], pad)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, target in enumerate(targets):
        if target:
            labels[row, -len(target):] = torch.as_tensor(target)
    prompt_tensor, prompt_mask = pad_left(prompt_ids, pad)
    index = {a: i for i, a in enumerate(answers)}
    return {
        "ids": [str(e["id"]) for e in examples],
        "images": stack_images(examples),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "prompt_ids": prompt_tensor,
        "prompt_mask": prompt_mask,
        "prompt_last": torch.tensor([input_ids.shape[1] - len(t) - 1 for t in targets]),
        "class_labels": torch.tensor([index.get(text, IGNORE_INDEX) for text in texts]),
    }


def loss(model: FlamingoVQA, batch: Mapping[str, Any]) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens (+ weighted head cross-entropy)."""
    batch = to_device(batch, model.wte.weight.device)
    media = model.encode_images(to_float(batch["images"]))
    hidden = model(media, batch["input_ids"], batch["attention_mask"])
    logits = model.lm_head(hidden[:, :-1]).float()
    total = F.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX)
    if model.classifier is not None and bool((batch["class_labels"] != IGNORE_INDEX).any()):
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        class_logits = model.classifier(hidden[rows, batch["prompt_last"]]).float()
        head = F.cross_entropy(class_logits, batch["class_labels"], ignore_index=IGNORE_INDEX)
        total = total + model.classifier_weight * head
    return total


def make_collate(args: Mapping[str, Any], answers: Sequence[str], pad_id: int = 0):
    """The family ``collate``: examples → ``collate`` batches with the checkpoint's tokenizer."""
    return functools.partial(collate, tokenizer=load_tokenizer(args), args=dict(args), answers=list(answers))


@torch.no_grad()
def predict_split(
    module: FlamingoVQA, args: Mapping[str, Any], answers: Sequence[str], data: TextImageSplit, run: PredictRun
) -> tuple[pd.DataFrame, None]:
    """Generated (or, with ``answer_head: classify``, classified) answers of every example of ``data``."""
    generator = torch.Generator(run.device).manual_seed(0)  # the sampled answers are reproducible
    predict_batch = functools.partial(
        predict, module, tokenizer=load_tokenizer(args), spec=run.generation, answers=answers, generator=generator
    )
    return generate_split(data, make_collate(args, answers), run.generation, predict_batch), None


# Only the new layers train; the frozen CLIP and GPT-2 come back from their checkpoints.
FAMILY = ModelFamily(
    FlamingoSpec, builder_args, build, param_groups, text_image_split, make_collate, lm_score(loss), predict_split,
    monitor="val_loss", saves="trainable",
)
