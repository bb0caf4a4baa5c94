"""Caption generators for the ``caption`` stage: a checkpoint (zero-shot) or a training run → images → texts.

Three kinds, in one literal dict (``CAPTION_KINDS``):

* ``blip``  ``BlipForConditionalGeneration`` + ``BlipProcessor`` (``Salesforce/blip-image-captioning-base``
  or a ``medvqa.demo.tiny_hf.write_tiny_blip(..., task="caption")`` directory). The decoder starts from
  ``[DEC]``, optionally followed by a text prefix (``prompt``, e.g. "a radiology image of"); only the
  tokens after the prefix are returned.
* ``flamingo``  a trained ``flamingo`` run only (its new layers have no pretrained weights): greedy
  captions after its own ``model.prompt`` (``{question}`` filled with "").
* ``vlm``   any ``AutoModelForImageTextToText`` + ``AutoProcessor`` (Qwen2-VL, Qwen2.5-VL, InternVL3-hf,
  LLaVA-1.5, LLaVA-NeXT) with its own chat template: user turn = image + ``prompt``
  (default: a fine-tuned run's ``model.caption_prompt``, else "Describe this medical image."),
  generation prompt, answer until the end-of-turn token.

Zero-shot loading takes ``CaptionSpec.checkpoint`` (hub id or save_pretrained directory). A
training run directory (``results/models/{dataset}/{model}/{seed}/``: state.json + best.safetensors
of the training engine) is one more case, rebuilt by ``medvqa.models.checkpoint.load_checkpoint``
and checked by its ``state.json["family"]``: ``blip`` (a caption fine-tune), ``flamingo`` or
``vlm_sft`` (base + LoRA; a zero-shot run dir gives the base model). Its model settings come from
the run; the decoding settings (and the blip / vlm prompt) from ``CaptionSpec``.

Images arrive as uint8 arrays (H, W, 3) from the image cache; a ``Captioner.generate`` call
takes a list of B of them and returns B stripped strings without special tokens.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medvqa.io import read_json
from medvqa.models.common import resolve_device, resolve_dtype
from medvqa.models.specs import CaptionSpec
from medvqa.spec import ConfigError

log = logging.getLogger(__name__)

RUN_STATE = "state.json"  # written last by every training run: its presence marks a complete run


@dataclasses.dataclass(frozen=True)
class Captioner:
    """A loaded model: ``generate(images)`` maps B uint8 (H, W, 3) arrays to B captions."""

    kind: str
    source: str  # the checkpoint or run directory it was loaded from (for logs)
    generate: Callable[[Sequence[np.ndarray]], list[str]]


@dataclasses.dataclass(frozen=True)
class CaptionKind:
    run_family: str  # state.json "family" of a fine-tuned run of this kind
    load_base: Callable[[CaptionSpec, torch.device], Captioner]  # zero-shot, from spec.checkpoint
    load_run: Callable[[CaptionSpec, Path, torch.device], Captioner]  # (spec, run directory, device)


# --- blip -------------------------------------------------------------------------------------

def _blip_prompt_ids(tokenizer, prompt: str | None) -> list[int] | None:
    """``[CLS] prefix [SEP]`` ids (BLIP's generate swaps [CLS] for [DEC] and drops [SEP]); None = no prefix."""
    if not prompt:
        return None
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


@torch.no_grad()
def _blip_generate(model, tokenizer, spec: CaptionSpec, images: Sequence[np.ndarray]) -> list[str]:
    from medvqa.models.generation import answer_lengths, decode_texts
    from medvqa.models.generative import stack_images

    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    # (B, H, W, 3) uint8 → (B, 3, S, S) standardised at the processor's size S, in the model's dtype.
    pixels = model.pixel_values(stack_images([{"image": i} for i in images]).to(device)).to(dtype)
    prefix = _blip_prompt_ids(tokenizer, spec.prompt)
    input_ids = None if prefix is None else torch.tensor([prefix] * len(images), device=device)
    text = model.hf.config.text_config
    options = dict(temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k) if spec.do_sample else {}
    # Every setting explicit: a checkpoint's generation_config (max_length 20, ...) must not leak in.
    out = model.hf.generate(
        pixel_values=pixels, input_ids=input_ids, max_new_tokens=spec.max_new_tokens, num_beams=spec.num_beams,
        do_sample=spec.do_sample, repetition_penalty=spec.repetition_penalty, **options,
    )
    start = 1 if prefix is None else len(prefix) - 1  # [DEC] (+ prefix) precede the new tokens
    tokens = out[:, start:]
    lengths = answer_lengths(tokens, [text.sep_token_id])
    if prefix is None:
        return decode_texts(tokenizer, tokens, lengths)
    # Decoded together with the prefix, then cut, as BLIP's own captioning reads: a first new
    # token that continues the prefix's last word ("of" + "##ft") must join it, not keep "##".
    wholes = decode_texts(tokenizer, out[:, 1:], lengths + start - 1)
    head = tokenizer.decode(prefix, skip_special_tokens=True).strip()
    alone = decode_texts(tokenizer, tokens, lengths)
    return [w[len(head):].strip() if w.startswith(head) else a for w, a in zip(wholes, alone)]


def _blip_captioner(model, tokenizer, spec: CaptionSpec, source: str, device: torch.device) -> Captioner:
    model = model.to(device=device, dtype=resolve_dtype(spec.dtype, device)).eval()

    def generate(images: Sequence[np.ndarray]) -> list[str]:
        return _blip_generate(model, tokenizer, spec, images)

    return Captioner("blip", source, generate)


def load_blip_base(spec: CaptionSpec, device: torch.device) -> Captioner:
    from medvqa.models import blip
    from medvqa.models.common import DataInfo

    # BLIP's builder ignores the data facts; its image size comes from the checkpoint's processor.
    args = blip.builder_args({"checkpoint": spec.checkpoint, "task": "caption"}, DataInfo(n_answers=0, image_size=0))
    return _blip_captioner(blip.build(args, True), blip.load_tokenizer(args), spec, spec.checkpoint, device)


def load_blip_run(spec: CaptionSpec, run_dir: Path, device: torch.device) -> Captioner:
    from medvqa.models import blip
    from medvqa.models.checkpoint import load_checkpoint

    built, _ = load_checkpoint(run_dir)
    if built.args.get("task") != "caption":
        raise ConfigError(f"{run_dir} is a BLIP {built.args.get('task')!r} run; captioning needs task: caption")
    return _blip_captioner(built.module, blip.load_tokenizer(built.args), spec, str(run_dir), device)


# --- flamingo ---------------------------------------------------------------------------------

def load_flamingo_base(spec: CaptionSpec, device: torch.device) -> Captioner:
    raise ConfigError("flamingo has no pretrained captioner (its resampler and cross-attention layers are new): "
                      "train it on the caption dataset and caption from the run directory")


def load_flamingo_run(spec: CaptionSpec, run_dir: Path, device: torch.device) -> Captioner:
    from medvqa.models import flamingo
    from medvqa.models.checkpoint import load_checkpoint
    from medvqa.models.flamingo_generate import predict
    from medvqa.models.generation import GenerationSpec

    built, _ = load_checkpoint(run_dir)
    if built.args["answer_head"] != "generate":
        raise ConfigError(f"{run_dir} is a flamingo answer_head: {built.args['answer_head']} run; "
                          "captions need answer_head: generate")
    model = built.module.to(device=device, dtype=resolve_dtype(spec.dtype, device)).eval()
    tokenizer = flamingo.load_tokenizer(built.args)
    collate = flamingo.make_collate(built.args, ())  # no question: the prompt is model.prompt with "" for {question}
    gen = GenerationSpec.from_mapping({"batch_size": spec.batch_size, "max_new_tokens": spec.max_new_tokens},
                                      "caption (flamingo)")

    def generate(images: Sequence[np.ndarray]) -> list[str]:
        batch = collate([{"id": str(i), "image": image} for i, image in enumerate(images)])
        return [row["prediction"] for row in predict(model, batch, tokenizer, gen)]

    return Captioner("flamingo", str(run_dir), generate)


# --- vlm --------------------------------------------------------------------------------------

def _vlm_captioner(model, processor, vlm_spec, spec: CaptionSpec, source: str) -> Captioner:
    from medvqa.models.generation import GenerationSpec, generate_batch
    from medvqa.models.vlm_collate import VlmCollator
    from medvqa.models.vlm_sft import generation_stop_ids, model_type_of, prompt_format

    # Examples without a question are caption turns: the user text is fmt.caption_prompt, the
    # run's model.caption_prompt (what a fine-tune learnt from) unless caption.prompt is given.
    fmt = prompt_format(vlm_spec, processor, model_type_of(model))
    fmt = dataclasses.replace(fmt, caption_prompt=spec.prompt if spec.prompt is not None else fmt.caption_prompt,
                              system_prompt=spec.system_prompt or fmt.system_prompt)
    collate = VlmCollator(processor, fmt, with_labels=False, padding_side="left")
    stops = generation_stop_ids(model, processor, fmt)
    device = next(model.parameters()).device
    gen = GenerationSpec.from_mapping({
        "batch_size": spec.batch_size, "max_new_tokens": spec.max_new_tokens, "num_beams": spec.num_beams,
        "do_sample": spec.do_sample, "temperature": spec.temperature, "top_p": spec.top_p,
        "top_k": spec.top_k, "repetition_penalty": spec.repetition_penalty,
    }, "caption (vlm)")

    def generate(images: Sequence[np.ndarray]) -> list[str]:
        batch = collate([{"id": str(i), "image": image} for i, image in enumerate(images)])
        inputs = {key: value.to(device) for key, value in batch.items()}
        return [r["prediction"] for r in generate_batch(model, inputs, processor.tokenizer, gen, stops)]

    return Captioner("vlm", source, generate)


def load_vlm_base(spec: CaptionSpec, device: torch.device) -> Captioner:
    from medvqa.models.vlm_sft import VlmSftSpec, load_vlm

    vlm_spec = VlmSftSpec.from_mapping({
        "checkpoint": spec.checkpoint, "finetune": False, "dtype": spec.dtype,
        "min_pixels": spec.min_pixels, "max_pixels": spec.max_pixels,
    }, "caption (vlm)")
    model, processor = load_vlm(vlm_spec, None, device)
    return _vlm_captioner(model, processor, vlm_spec, spec, spec.checkpoint)


def load_vlm_run(spec: CaptionSpec, run_dir: Path, device: torch.device) -> Captioner:
    from medvqa.models.checkpoint import load_checkpoint
    from medvqa.models.vlm_sft import load_processor, spec_of

    model, _ = load_checkpoint(run_dir)  # base (+ LoRA unless zero-shot), in the run's dtype
    vlm_spec = spec_of(model.args)  # checkpoint paths resolved from the run (any working directory)
    return _vlm_captioner(model.module.to(device).eval(), load_processor(vlm_spec), vlm_spec, spec, str(run_dir))


CAPTION_KINDS: dict[str, CaptionKind] = {
    "blip": CaptionKind("blip", load_blip_base, load_blip_run),
    "flamingo": CaptionKind("flamingo", load_flamingo_base, load_flamingo_run),
    "vlm": CaptionKind("vlm_sft", load_vlm_base, load_vlm_run),
}


def load_captioner(spec: CaptionSpec, run_dir: str | Path | None = None) -> Captioner:
    """The zero-shot model of ``spec.checkpoint``, or the fine-tuned model of ``run_dir``
    (``spec.backend`` vllm: generated by vLLM, ``medvqa.inference.vllm_backend``)."""
    kind = CAPTION_KINDS[spec.kind]
    if spec.backend == "vllm":
        from medvqa.inference import vllm_backend  # the optional vllm package is imported only there

        log.info("%s captioner on vLLM from %s", spec.kind, run_dir or spec.checkpoint)
        return Captioner(spec.kind, str(run_dir or spec.checkpoint), vllm_backend.caption_function(spec, run_dir))
    device = resolve_device(spec.device)
    if run_dir is None:
        if not spec.checkpoint:
            raise ConfigError("caption: give a checkpoint (zero-shot) or a training run directory")
        log.info("zero-shot %s captioner from %s on %s", spec.kind, spec.checkpoint, device)
        return kind.load_base(spec, device)
    run_dir = Path(run_dir)
    state = read_json(run_dir / RUN_STATE)
    if state.get("family") != kind.run_family:
        raise ConfigError(f"{run_dir} is a {state.get('family')!r} run; caption kind {spec.kind!r} "
                          f"needs a {kind.run_family!r} run")
    log.info("fine-tuned %s captioner from %s on %s", spec.kind, run_dir, device)
    return kind.load_run(spec, run_dir, device)
