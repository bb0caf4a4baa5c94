"""The ``vlm_sft`` family: any ``AutoModelForImageTextToText`` + ``AutoProcessor`` checkpoint
(Qwen2-VL, Qwen2.5-VL, Qwen3-VL, InternVL3-hf, LLaVA-1.5, LLaVA-NeXT, Gemma 3 / MedGemma, SmolVLM
(Idefics3), ...) with optional LoRA / QLoRA.

Reads a checkpoint directory or hub id (config.json, weights, tokenizer, chat template,
processor). Trained by the shared engine (``medvqa.training.engine``) with the language-model
loss on the answer tokens; the validation loss selects the best epoch. A run directory holds
  best.safetensors   the LoRA weights of the best epoch (only they train; ``saves="trainable"``)
  adapter/           the same adapter as ``PeftModel.save_pretrained`` writes it (base model: hub
                     id or absolute path) + the run's processor, for use outside medvqa:
                     ``PeftModel.from_pretrained(base, run_dir / "adapter")``
  state.json, history.csv (epoch, train_loss, val_loss, lr, seconds)

Two config entries per checkpoint give the paper's comparison:
  zero-shot   (no ``train:`` block; args ``finetune: false``) → the base model as loaded (state.json only)
  fine-tuned  (a ``train:`` block)                              → base + LoRA adapter

Per-architecture facts (end-of-turn token, LoRA targets) live in ``ARCHITECTURES``, keyed by
``config.model_type``; an unknown model_type falls back to the tokenizer's eos and the usual
attention projections, so new ``AutoModelForImageTextToText`` models work without code changes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from medvqa.io import absolute_if_local, atomic_dir, read_json, write_json
from medvqa.models.common import BatchScore, DataInfo, ModelFamily, PredictRun, Step, resolve_dtype
from medvqa.models.generation import generate_answers, prediction_frame
from medvqa.models.generative import TextImageSplit, answer_tokens, text_image_split
from medvqa.models.specs import VlmSftSpec
from medvqa.models.vlm_collate import PromptFormat, VlmCollator
from medvqa.spec import ConfigError

log = logging.getLogger(__name__)

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclasses.dataclass(frozen=True)
class VlmArchitecture:
    """What differs between VLM families for SFT."""

    end_of_turn: str | None  # token closing an assistant turn; None = the tokenizer's eos
    lora_targets: tuple[str, ...] = ATTENTION_PROJECTIONS  # module names LoRA wraps by default
    # Regex of the language model's module prefix: the vision tower also has q_proj/k_proj
    # (CLIP, InternViT) and stays frozen by default.
    language_model: str = r"model\.language_model\."


ARCHITECTURES: dict[str, VlmArchitecture] = {
    "qwen2_vl": VlmArchitecture("<|im_end|>"),
    "qwen2_5_vl": VlmArchitecture("<|im_end|>"),
    "qwen3_vl": VlmArchitecture("<|im_end|>"),
    "internvl": VlmArchitecture("<|im_end|>"),
    "llava": VlmArchitecture(None),  # Vicuna: "ASSISTANT: {answer}</s>"
    "llava_next": VlmArchitecture(None),  # Mistral: "[/INST] {answer}</s>"
    "gemma3": VlmArchitecture("<end_of_turn>"),  # Gemma 3, MedGemma: "<start_of_turn>model\n{answer}<end_of_turn>"
    # SmolVLM (Idefics3): "Assistant: {answer}<end_of_utterance>"; its LM is model.text_model
    "idefics3": VlmArchitecture("<end_of_utterance>", language_model=r"model\.text_model\."),
}
FALLBACK_ARCHITECTURE = VlmArchitecture(None)


def model_type_of(model) -> str:
    """``config.model_type`` of a loaded model (a PeftModel is looked through)."""
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    return config.model_type


def architecture_of(model_type: str) -> VlmArchitecture:
    return ARCHITECTURES.get(model_type, FALLBACK_ARCHITECTURE)


def prompt_format(spec: VlmSftSpec, processor, model_type: str) -> PromptFormat:
    """The prompt settings of ``spec`` with the end-of-turn token resolved for this architecture."""
    tokenizer = processor.tokenizer
    end = spec.end_of_turn or architecture_of(model_type).end_of_turn or tokenizer.eos_token
    if tokenizer.convert_tokens_to_ids(end) in (None, tokenizer.unk_token_id):
        raise ConfigError(f"end_of_turn {end!r} is not a token of {spec.checkpoint}'s tokenizer")
    return PromptFormat(end_of_turn=end, instruction=spec.instruction, system_prompt=spec.system_prompt,
                        caption_prompt=spec.caption_prompt)


def quantization_config(spec: VlmSftSpec, dtype: torch.dtype):
    """BitsAndBytesConfig for QLoRA (NF4, double quantisation), or None."""
    if spec.quantization == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"quantization: {spec.quantization} needs the bitsandbytes package "
            "(pip install bitsandbytes); set quantization: none to train plain LoRA"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
    )


def load_processor(spec: VlmSftSpec):
    """``AutoProcessor`` with the spec's image-size settings (Qwen-VL: min/max_pixels)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(spec.checkpoint, **spec.processor_kwargs)
    size = dict(getattr(processor.image_processor, "size", None) or {})
    # Qwen-VL image processors keep the pixel budget in size{shortest_edge, longest_edge}.
    if spec.min_pixels is not None or spec.max_pixels is not None:
        if "longest_edge" not in size:
            raise ConfigError(f"min_pixels/max_pixels: {type(processor.image_processor).__name__} has no pixel budget")
        size["shortest_edge"] = spec.min_pixels or size["shortest_edge"]
        size["longest_edge"] = spec.max_pixels or size["longest_edge"]
        processor.image_processor.size = size
    return processor


def load_base_model(spec: VlmSftSpec, device: torch.device, dtype: torch.dtype | None = None):
    """The pretrained model in eval mode on ``device`` (4-bit when the spec asks for QLoRA), in
    ``dtype`` (default: the spec's dtype for ``device``)."""
    from transformers import AutoModelForImageTextToText

    dtype = dtype or resolve_dtype(spec.dtype, device)
    quant = quantization_config(spec, dtype)
    # A device map loads the weights straight onto the GPU (and is required for 4-bit weights).
    on_cpu = device.type == "cpu" and quant is None
    model = AutoModelForImageTextToText.from_pretrained(
        spec.checkpoint, dtype=dtype, attn_implementation=spec.attn_implementation,
        quantization_config=quant, device_map=None if on_cpu else {"": str(device)},
    )
    return model.eval()


def lora_target_regex(spec: VlmSftSpec, arch: VlmArchitecture) -> str:
    """PEFT ``target_modules`` as a regex that must match a whole module name."""
    names = "|".join(spec.lora_target_modules or arch.lora_targets)
    prefix = arch.language_model if spec.lora_language_model_only else ""
    return rf"{prefix}(?:.*\.)?({names})"


def keep_4bit_weights_trainable(model) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference.

    On CPUs with AVX512-BF16, ``Linear4bit`` rewrites its weight into an inference-only layout
    during the first no-grad forward in eval mode (our validation pass); every later training
    step then fails ("a view of a leaf Variable that requires grad is being used in an in-place
    operation"). Training alternates the two, so the weights keep the layout autograd supports.
    """
    from bitsandbytes.nn import Linear4bit

    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False


def wrap_lora(spec: VlmSftSpec, model):
    """Freeze ``model`` and add LoRA adapters (PeftModel); only the adapters train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if spec.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
        keep_4bit_weights_trainable(model)
    if spec.gradient_checkpointing:
        # Non-reentrant checkpointing passes gradients to LoRA layers without grad-requiring inputs.
        # transformers >= 5.2x renamed the method; older releases only have gradient_checkpointing_enable.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(
        r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
        target_modules=lora_target_regex(spec, architecture_of(model_type_of(model))), bias="none",
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:  # peft's NoMatchingPeftModuleError
        raise ConfigError(f"LoRA matched no module of {spec.checkpoint} (target {config.target_modules!r})") from exc
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info("LoRA: %d trainable parameters (target %s)", trainable, config.target_modules)
    return peft_model


def build_vlm(spec: VlmSftSpec, device: str | torch.device = "cpu"):
    """(model, processor) for training: the base model, wrapped with LoRA when ``finetune``."""
    device = torch.device(device)
    processor = load_processor(spec)
    model = load_base_model(spec, device)
    if spec.finetune:
        model = wrap_lora(spec, model)
    return model, processor


def load_vlm(spec: VlmSftSpec, adapter_dir: str | Path | None = None, device: str | torch.device = "cpu"):
    """(model, processor) for inference: the base model, plus the adapter in ``adapter_dir`` when
    ``spec.finetune`` (zero-shot entries ignore ``adapter_dir``)."""
    from peft import PeftModel

    device = torch.device(device)
    processor = load_processor(spec)
    model = load_base_model(spec, device)
    if spec.finetune:
        if adapter_dir is None or not (Path(adapter_dir) / "adapter_config.json").exists():
            raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {adapter_dir}")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False).to(device)
    return model.eval(), processor


def generation_stop_ids(model, processor, fmt: PromptFormat) -> list[int]:
    """Token ids that end an answer: the end-of-turn token, the tokenizer's eos and the model's own."""
    tokenizer = processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(fmt.end_of_turn), tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    return list(dict.fromkeys(i for i in ids if i is not None))


# --- the family functions (see medvqa.models.common.ModelFamily) -----------------------------

def spec_of(args: Mapping[str, Any]) -> VlmSftSpec:
    return VlmSftSpec.from_mapping({k: v for k, v in args.items() if k != "model_type"}, "vlm_sft model")


def builder_args(model_config: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    """The spec + the checkpoint's model_type (it picks the end-of-turn token and LoRA targets)."""
    from transformers import AutoConfig

    spec = VlmSftSpec.from_mapping(model_config, "vlm_sft model")
    return {**spec.to_dict(), "model_type": AutoConfig.from_pretrained(spec.checkpoint).model_type}


def build(args: Mapping[str, Any], load_pretrained: bool) -> nn.Module:
    """The base model (+ LoRA when fine-tuned) on the CPU; the engine moves it to its device.

    4-bit weights cannot move, so QLoRA loads straight onto the current GPU (or the CPU,
    where bitsandbytes also runs 4-bit layers, without one).
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    spec = spec_of(args)
    if load_pretrained:
        quantised = spec.quantization != "none"
        on_gpu = quantised and torch.cuda.is_available()
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        model = load_base_model(spec, device, resolve_dtype(spec.dtype))
    else:
        config = AutoConfig.from_pretrained(spec.checkpoint)
        model = AutoModelForImageTextToText.from_config(config, dtype=resolve_dtype(spec.dtype)).eval()
    return wrap_lora(spec, model) if spec.finetune else model.requires_grad_(False)


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Only the LoRA adapters train, and they are new: one "head" group."""
    return {"backbone": [], "head": [p for p in model.parameters() if p.requires_grad]}


def make_collate(args: Mapping[str, Any], answers: Sequence[str] = (), pad_id: int = 0) -> VlmCollator:
    """Training batches: right-padded chat prompts + answers, labels on the answer tokens only."""
    spec = spec_of(args)
    processor = load_processor(spec)
    return VlmCollator(processor, prompt_format(spec, processor, args["model_type"]))


def score(module: nn.Module, batch: Mapping[str, torch.Tensor], step: Step) -> BatchScore:
    """The model's mean next-token loss over the answer (+ end-of-turn) tokens."""
    batch = {k: v.to(step.device, non_blocking=True) for k, v in batch.items()}
    # No KV cache in training: it is unused and clashes with gradient checkpointing.
    loss = module(**batch, use_cache=False).loss
    return BatchScore(loss, answer_tokens(batch["labels"]), int(batch["input_ids"].shape[0]), None)


@torch.no_grad()
def predict_split(
    module: nn.Module, args: Mapping[str, Any], answers: Sequence[str], data: TextImageSplit, run: PredictRun
) -> tuple[pd.DataFrame, None]:
    """Generated answers of every question of ``data`` (left-padded batches, ``medvqa.models.generation``)."""
    spec = spec_of(args)
    processor = load_processor(spec)
    fmt = prompt_format(spec, processor, args["model_type"])
    collate = VlmCollator(processor, fmt, with_labels=False, padding_side="left")
    stops = generation_stop_ids(module, processor, fmt)
    results = generate_answers(module, collate, data, processor.tokenizer, run.generation, stops)
    return prediction_frame(results, run.generation.confidence), None


def export_adapter(module: nn.Module, args: Mapping[str, Any], out_dir: Path) -> None:
    """``out_dir/adapter``: adapter_config.json + adapter_model.safetensors (PEFT's own format) and the
    run's processor (its image settings, tokenizer, chat template).

    ``base_model_name_or_path`` is the hub id, or the checkpoint directory's absolute path, so
    ``PeftModel.from_pretrained`` finds the base model from any working directory.
    """
    spec = spec_of(args)
    with atomic_dir(Path(out_dir) / "adapter") as tmp:
        module.save_pretrained(tmp)
        load_processor(spec).save_pretrained(tmp)
        config = read_json(tmp / "adapter_config.json")
        config["base_model_name_or_path"] = absolute_if_local(spec.checkpoint)
        write_json(config, tmp / "adapter_config.json")


FAMILY = ModelFamily(
    VlmSftSpec, builder_args, build, param_groups, text_image_split, make_collate, score, predict_split,
    monitor="val_loss", saves="trainable", export=export_adapter,
)
