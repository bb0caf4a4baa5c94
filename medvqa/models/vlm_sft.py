"""The ``vlm_sft`` family: any ``AutoModelForImageTextToText`` + ``AutoProcessor`` checkpoint
(Qwen2-VL, Qwen2.5-VL, InternVL3-hf, LLaVA-1.5, LLaVA-NeXT, ...) with optional LoRA / QLoRA.

Reads a checkpoint directory or hub id (config.json, weights, tokenizer, chat template,
processor); for inference with an adapter also ``{model_dir}/adapter_config.json`` +
``adapter_model.safetensors`` written by ``medvqa.models.vlm_train.train_vlm``.

Two config entries per checkpoint give the paper's comparison:
  zero-shot   ``finetune: false``  → the base model as loaded (no adapter)
  fine-tuned  ``finetune: true``   → base + LoRA adapter (``PeftModel.from_pretrained``)

Per-architecture facts (end-of-turn token, LoRA targets) live in ``ARCHITECTURES``, keyed by
``config.model_type``; an unknown model_type falls back to the tokenizer's eos and the usual
attention projections, so new ``AutoModelForImageTextToText`` models work without code changes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from medvqa.models.vlm_collate import PromptFormat
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
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
    "internvl": VlmArchitecture("<|im_end|>"),
    "llava": VlmArchitecture(None),  # Vicuna: "ASSISTANT: {answer}</s>"
    "llava_next": VlmArchitecture(None),  # Mistral: "[/INST] {answer}</s>"
}
FALLBACK_ARCHITECTURE = VlmArchitecture(None)


@dataclasses.dataclass(frozen=True)
class VlmSftSpec(Spec):
    """The ``model:`` sub-mapping of a ``vlm_sft`` config entry."""

    checkpoint: str  # hub id (Qwen/Qwen2-VL-2B-Instruct) or a save_pretrained directory
    finetune: bool = True  # false: zero-shot base model, no adapter
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scale numerator (scale = alpha / r)
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None  # module names; None = the architecture's default
    lora_language_model_only: bool = True  # false: also wrap same-named modules of the vision tower
    quantization: str = "none"  # none | 4bit (QLoRA: NF4 base weights; needs the bitsandbytes package)
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    dtype: str = "auto"  # auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    min_pixels: int | None = None  # Qwen-VL processors: fewest pixels an image is resized to
    max_pixels: int | None = None  # Qwen-VL processors: most pixels (caps the image tokens)
    processor_kwargs: dict = dataclasses.field(default_factory=dict)  # more AutoProcessor.from_pretrained kwargs
    instruction: str = "Answer briefly."  # appended to every question
    system_prompt: str | None = None  # None = the chat template's default
    end_of_turn: str | None = None  # None = the architecture's (ARCHITECTURES) token

    @classmethod
    def from_mapping(cls, mapping, where: str = "") -> VlmSftSpec:
        mapping = dict(mapping or {})
        if mapping.get("lora_target_modules") is not None:  # YAML gives a list; the frozen spec keeps a tuple
            mapping["lora_target_modules"] = tuple(mapping["lora_target_modules"])
        return super().from_mapping(mapping, where)

    def validate(self, where: str) -> None:
        check_range(where, "lora_r", self.lora_r, 1)
        check_range(where, "lora_alpha", self.lora_alpha, 1)
        check_range(where, "lora_dropout", self.lora_dropout, 0.0, 1.0)
        check_choice(where, "quantization", self.quantization, QUANTIZATIONS)
        check_choice(where, "dtype", self.dtype, DTYPES)
        if self.quantization != "none" and not self.finetune:
            raise ConfigError(f"{where}: quantization is for QLoRA fine-tuning; set finetune: true")
        for key in ("min_pixels", "max_pixels"):
            if getattr(self, key) is not None:
                check_range(where, key, getattr(self, key), 28 * 28)


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
    return PromptFormat(end_of_turn=end, instruction=spec.instruction, system_prompt=spec.system_prompt)


def torch_dtype(spec: VlmSftSpec, device: torch.device) -> torch.dtype:
    if spec.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec.dtype)


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


def load_base_model(spec: VlmSftSpec, device: torch.device):
    """The pretrained model in eval mode on ``device`` (4-bit when the spec asks for QLoRA)."""
    from transformers import AutoModelForImageTextToText

    dtype = torch_dtype(spec, device)
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


def wrap_lora(spec: VlmSftSpec, model):
    """Freeze ``model`` and add LoRA adapters (PeftModel); only the adapters train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if spec.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
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


def describe(model: Any) -> dict[str, int]:
    """Parameter counts of a (possibly LoRA-wrapped) model."""
    total = sum(p.numel() for p in model.parameters())
    return {"parameters": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
