"""Family ``blip``: fine-tuning of Hugging Face BLIP for VQA (``BlipForQuestionAnswering``) or
captioning (``BlipForConditionalGeneration``), with greedy / sampled answer generation.

Checkpoint: ``from_pretrained(checkpoint)`` + ``BlipProcessor`` of a hub id
(``Salesforce/blip-vqa-base``, ``Salesforce/blip-image-captioning-base``) or a save_pretrained
directory (``medvqa.demo.tiny_hf.write_tiny_blip``). Images are standardised as tensors with the
processor's mean/std; text is tokenised by the processor's tokenizer in ``collate``.

Decoder convention (checked against transformers 5.x ``BlipForQuestionAnswering.forward``):
when only ``labels`` is given the model feeds ``labels`` as ``decoder_input_ids``, so -100 in
them would be looked up as a token. ``collate`` therefore builds ``decoder_input_ids`` =
``[DEC] a1 … an [SEP] [PAD]…`` (the tokenizer's ``[CLS]`` replaced by text_config.bos_token_id,
as BLIP's own generate starts) and ``labels`` = the same with -100 on padding; the decoder
shifts internally (logits[:, t] predict labels[:, t + 1]), so labels[:, 0] is never scored.

Trained by the shared engine (every weight saved; the validation loss selects the best epoch);
predictions are generated (``predict_split``). A trained run also holds ``hf_model/``, the best
model as a ``save_pretrained`` directory with its processor (``export_hf``).

Batch: ids (list[str]); images (B, H, W, 3) uint8; VQA only: input_ids / attention_mask
(B, Lq), the right-padded question; decoder_input_ids / decoder_attention_mask / labels (B, La).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from medvqa.data.answers import normalise_answer
from medvqa.io import atomic_dir
from medvqa.models.common import DataInfo, ModelFamily, Normalise, PredictRun
from medvqa.models.generation import answer_lengths, decode_texts, sequence_probabilities
from medvqa.models.generative import (
    IGNORE_INDEX, TextImageSplit, generate_split, image_statistics, lm_score, split_new_and_pretrained,
    stack_images, text_image_split, to_device,
)
from medvqa.models.augment import to_float
from medvqa.models.specs import BlipSpec, GenerationSpec
from medvqa.spec import ConfigError


def model_class(task: str):
    from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering

    return BlipForQuestionAnswering if task == "vqa" else BlipForConditionalGeneration


def builder_args(model_config: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    """Spec + the checkpoint's BlipConfig and image statistics (a rebuild needs no hub)."""
    from transformers import AutoImageProcessor, BlipConfig

    spec = BlipSpec.from_mapping(model_config, "blip model")
    config = BlipConfig.from_pretrained(spec.checkpoint)
    positions = config.text_config.max_position_embeddings
    if max(spec.max_question_tokens, spec.max_answer_tokens) > positions:
        raise ConfigError(f"blip model: max_question_tokens / max_answer_tokens exceed the {positions} text positions")
    return {
        **spec.to_dict(),
        "config": config.to_dict(),
        **image_statistics(AutoImageProcessor.from_pretrained(spec.checkpoint)),
    }


def _hand_over_cross_attention_mask(module, args, kwargs):
    # transformers 5.x: BlipTextAttention passes the encoder's padding mask to its cross-
    # attention as `attention_mask`, but BlipTextSelfAttention reads it from
    # `encoder_attention_mask` there, so padded question tokens were attended and a question's
    # answer depended on the other questions of its batch. Hand the mask over under that name.
    if kwargs.get("encoder_attention_mask") is None and kwargs.get("attention_mask") is not None:
        kwargs = {**kwargs, "encoder_attention_mask": kwargs["attention_mask"]}
    return args, kwargs


def mask_cross_attention_padding(hf: nn.Module) -> None:
    """Make every BLIP text cross-attention honour the encoder attention mask (see above)."""
    for name, module in hf.named_modules():
        if name.endswith("crossattention.self"):
            module.register_forward_pre_hook(_hand_over_cross_attention_mask, with_kwargs=True)


class BlipFineTune(nn.Module):
    """A Hugging Face BLIP (``self.hf``) and the tensor image standardisation it expects."""

    def __init__(self, hf: nn.Module, args: Mapping[str, Any]):
        super().__init__()
        self.normalise = Normalise(args["image_mean"], args["image_std"], args["image_size"])
        self.hf = hf
        self.task = args["task"]
        mask_cross_attention_padding(hf)
        if args["freeze_vision"]:
            hf.vision_model.requires_grad_(False)

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 → (B, 3, S, S) standardised, S = the processor's size."""
        return self.normalise(to_float(images))

    def forward(self, batch: Mapping[str, Any]):
        """The Hugging Face model's output for a ``collate`` batch (``.loss`` is the LM loss)."""
        pixels = self.pixel_values(batch["images"])
        if self.task == "caption":
            return self.hf(pixel_values=pixels, input_ids=batch["decoder_input_ids"],
                           attention_mask=batch["decoder_attention_mask"], labels=batch["labels"])
        return self.hf(
            input_ids=batch["input_ids"], pixel_values=pixels, attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
            labels=batch["labels"],
        )


def build(args: Mapping[str, Any], load_pretrained: bool) -> BlipFineTune:
    from transformers import BlipConfig

    cls = model_class(args["task"])
    if load_pretrained:
        hf = cls.from_pretrained(args["checkpoint"], dtype=torch.float32)
    else:
        hf = cls(BlipConfig.from_dict(args["config"]))
    return BlipFineTune(hf, args)


def param_groups(model: BlipFineTune) -> dict[str, list[nn.Parameter]]:
    """All of BLIP is pretrained: one "backbone" group."""
    return split_new_and_pretrained(model, [model.hf])


def load_tokenizer(args: Mapping[str, Any]):
    from transformers import BlipProcessor

    return BlipProcessor.from_pretrained(args["checkpoint"]).tokenizer


def _targets(tokenizer, texts: Sequence[str], bos_id: int, max_tokens: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_tokens,
                    return_tensors="pt", return_token_type_ids=False)
    decoder_input_ids = enc["input_ids"].clone()
    decoder_input_ids[:, 0] = bos_id
    return {
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": enc["attention_mask"],
        "labels": decoder_input_ids.masked_fill(enc["attention_mask"] == 0, IGNORE_INDEX),
    }


def collate(examples: Sequence[Mapping[str, Any]], tokenizer, args: Mapping[str, Any]) -> dict[str, Any]:
    """Examples (``medvqa.models.generative``) → the batch of the module docstring.

    VQA targets are normalised answers (as in answers.json); captions are kept as written.
    An example without a target gets an empty one ("[DEC] [SEP]"), fine for prediction.
    """
    bos_id = args["config"]["text_config"]["bos_token_id"]
    batch = {"ids": [str(e["id"]) for e in examples], "images": stack_images(examples)}
    if args["task"] == "caption":
        captions = [str(e.get("caption") or "").strip() for e in examples]
        return {**batch, **_targets(tokenizer, captions, bos_id, args["max_answer_tokens"])}
    questions = tokenizer([str(e["question"]) for e in examples], padding="longest", truncation=True,
                          max_length=args["max_question_tokens"], return_tensors="pt", return_token_type_ids=False)
    answers = [normalise_answer(e["answer"]) if e.get("answer") is not None else "" for e in examples]
    return {
        **batch, "input_ids": questions["input_ids"], "attention_mask": questions["attention_mask"],
        **_targets(tokenizer, answers, bos_id, args["max_answer_tokens"]),
    }


def loss(model: BlipFineTune, batch: Mapping[str, Any]) -> torch.Tensor:
    """BLIP's mean next-token cross-entropy over the non-padding target tokens."""
    return model(to_device(batch, next(model.parameters()).device)).loss


def encode(model: BlipFineTune, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """What the text decoder cross-attends to: (states (B, N, D), mask (B, N)).

    VQA: the question encoded with the image (masked where the question is padded);
    captioning: the image tokens.
    """
    hf = model.hf
    image = hf.vision_model(pixel_values=model.pixel_values(batch["images"])).last_hidden_state
    image_mask = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
    if model.task == "caption":
        return image, image_mask
    question = hf.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               encoder_hidden_states=image, encoder_attention_mask=image_mask).last_hidden_state
    return question, batch["attention_mask"]


def decoder_logits(model: BlipFineTune, batch: Mapping[str, Any]) -> torch.Tensor:
    """Text-decoder logits (B, La, vocab) for ``batch["decoder_input_ids"]`` (VQA's forward
    returns only the loss)."""
    states, mask = encode(model, batch)
    return model.hf.text_decoder(
        input_ids=batch["decoder_input_ids"], attention_mask=batch["decoder_attention_mask"],
        encoder_hidden_states=states, encoder_attention_mask=mask,
    ).logits


def _generate(model, states, mask, spec: GenerationSpec, sample: bool):
    """Decoder generation from [DEC] → (tokens (B·n, T), token probabilities (B·n, T) or None)."""
    text = model.hf.config.text_config
    start = torch.full((len(states), 1), text.bos_token_id, dtype=torch.long, device=states.device)
    options = dict(do_sample=True, num_return_sequences=spec.num_samples, temperature=spec.temperature,
                   top_k=0, top_p=1.0) if sample else dict(do_sample=False, output_logits=True)
    out = model.hf.text_decoder.generate(
        input_ids=start, encoder_hidden_states=states, encoder_attention_mask=mask,
        eos_token_id=text.sep_token_id, pad_token_id=text.pad_token_id, max_new_tokens=spec.max_new_tokens,
        use_cache=spec.use_cache, return_dict_in_generate=True, **options,
    )
    tokens = out.sequences[:, 1:]
    if sample:
        return tokens, None
    probs = torch.stack(out.logits, 1).float().softmax(-1)
    return tokens, probs.gather(2, tokens[..., None])[..., 0]


@torch.no_grad()
def predict(model: BlipFineTune, batch: Mapping[str, Any], tokenizer, spec: GenerationSpec) -> list[dict[str, Any]]:
    """One prediction dict per row (``medvqa.models.generative``): greedy answer or caption,
    its token-probability product and mean, and ``spec.num_samples`` sampled answers
    (drawn with the global torch RNG: seed it with ``seed_everything``)."""
    model.eval()
    batch = to_device(batch, next(model.parameters()).device)
    states, mask = encode(model, batch)
    sep = model.hf.config.text_config.sep_token_id
    tokens, probs = _generate(model, states, mask, spec, sample=False)
    lengths = answer_lengths(tokens, [sep])
    product, mean = sequence_probabilities(probs, lengths)
    texts = decode_texts(tokenizer, tokens, lengths)
    samples = [[] for _ in texts]
    if spec.num_samples:
        drawn, _ = _generate(model, states, mask, spec, sample=True)
        flat = decode_texts(tokenizer, drawn, answer_lengths(drawn, [sep]))
        samples = [flat[i * spec.num_samples:(i + 1) * spec.num_samples] for i in range(len(texts))]
    return [
        {"prediction": t, "answer_prob_product": p, "answer_prob_mean": m, "samples": s}
        for t, p, m, s in zip(texts, product, mean, samples)
    ]


def make_collate(args: Mapping[str, Any], answers: Sequence[str] = (), pad_id: int = 0):
    """The family ``collate``: examples → ``collate`` batches with the checkpoint's tokenizer."""
    return functools.partial(collate, tokenizer=load_tokenizer(args), args=dict(args))


@torch.no_grad()
def predict_split(
    module: BlipFineTune, args: Mapping[str, Any], answers: Sequence[str], data: TextImageSplit, run: PredictRun
) -> tuple[pd.DataFrame, None]:
    """Generated answers (or captions) of every example of ``data``."""
    predict_batch = functools.partial(predict, module, tokenizer=load_tokenizer(args), spec=run.generation)
    return generate_split(data, make_collate(args), run.generation, predict_batch), None


def export_hf(module: BlipFineTune, args: Mapping[str, Any], out_dir: Path) -> None:
    """``out_dir/hf_model``: the fine-tuned Hugging Face model + the checkpoint's processor, as
    ``save_pretrained`` writes them, so ``BlipForQuestionAnswering.from_pretrained(dir)`` (VQA) or
    ``BlipForConditionalGeneration.from_pretrained(dir)`` (captions) loads it without medvqa."""
    from transformers import BlipProcessor

    with atomic_dir(Path(out_dir) / "hf_model") as tmp:
        module.hf.save_pretrained(tmp)
        BlipProcessor.from_pretrained(args["checkpoint"]).save_pretrained(tmp)


# All of BLIP is fine-tuned, so a checkpoint holds every weight.
FAMILY = ModelFamily(
    BlipSpec, builder_args, build, param_groups, text_image_split, make_collate, lm_score(loss), predict_split,
    monitor="val_loss", export=export_hf,
)
