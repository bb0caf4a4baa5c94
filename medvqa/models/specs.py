"""The config side of the model families, without torch: every spec a ``models:`` entry holds.

The workflow checks each entry when it loads (``medvqa.workflow_config``) and, on a cluster,
again at the start of every job, so nothing here imports torch or transformers (nor does the
``medvqa.models`` package itself: the torch modules, ``MODEL_FAMILIES`` in ``medvqa.models.registry``
among them, load only when imported by name).

* one spec per family for the entry's ``model:`` sub-mapping (``CnnLstmSpec`` … ``VlmSftSpec``);
  two class attributes say how the family reads its data:
  ``TOKEN_KIND`` — "words" | "hf": it reads pre-tokenised questions of such a tokenizer;
  None: it reads the text and tokenises it in its collator (the generative families);
  ``GENERATION_KEYS`` — None for classifiers; for generative families the ``GenerationSpec``
  keys its decoder honours (any other key must keep its default);
  and ``tasks()`` says which data the configured model learns from: ``vqa`` (question/answer
  rows) and/or ``caption`` (image/caption rows);
* ``GenerationSpec``: the ``generate:`` sub-mapping of a generative entry;
* ``CaptionSpec``: the ``caption:`` sub-mapping of a captioning entry;
* ``AugmentSpec``: the ``train.augment:`` sub-mapping (``medvqa.models.augment`` applies it), and
  ``PRECISIONS``, the choices of ``train.precision`` and ``predict.precision``.

``medvqa.families`` names each family's spec in its table and checks whole entries
(``ModelConfig``); the config check must not import the families' torch modules.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from medvqa.spec import ConfigError, Spec, check_choice, check_range

RESNETS = ("resnet18", "resnet34", "resnet50")
QUANTIZATIONS = ("none", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")  # attn_implementation of from_pretrained
PROB_SOURCES = ("auto", "scores", "forward")
CONFIDENCES = ("product", "mean")
BACKENDS = ("hf", "vllm")  # hf: Hugging Face generate; vllm: medvqa.inference.vllm_backend (vlm_sft / vlm captions)
TASKS = ("vqa", "caption")  # the dataset tasks (datasets.*.task)
DEFAULT_VLM_PROMPT = "Describe this medical image."


PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # train.precision and predict.precision


@dataclasses.dataclass(frozen=True)
class AugmentSpec(Spec):
    """Tensor augmentation of the cached images (classifier families; see ``medvqa.models.augment``)."""

    enabled: bool = True  # false = the images as cached
    crop_scale: float = 0.8  # smallest area fraction of the random resized crop (1 = no crop)
    crop_ratio: float = 1.25  # largest aspect-ratio change of the crop (1 = square crops)
    rotation: float = 10.0  # largest rotation, degrees
    flip: bool = False  # random horizontal flip (swaps left and right!)
    brightness: float = 0.2  # brightness factor drawn from [1 - b, 1 + b]
    contrast: float = 0.2  # contrast factor drawn from [1 - c, 1 + c]
    saturation: float = 0.0  # saturation factor drawn from [1 - s, 1 + s]

    def validate(self, where: str) -> None:
        check_range(where, "crop_scale", self.crop_scale, 0.05, 1.0)
        check_range(where, "crop_ratio", self.crop_ratio, 1.0, 4.0)
        check_range(where, "rotation", self.rotation, 0.0, 180.0)
        for key in ("brightness", "contrast", "saturation"):
            check_range(where, key, getattr(self, key), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ModelSpec(Spec):
    """Base of the ``model:`` specs (see the module docstring)."""

    TOKEN_KIND: ClassVar[str | None] = None
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = None

    def tasks(self) -> tuple[str, ...]:
        """The dataset tasks this model trains on and predicts for (classifiers: answers.json's classes)."""
        return ("vqa",)


@dataclasses.dataclass(frozen=True)
class CnnLstmSpec(ModelSpec):
    """The ``model:`` sub-mapping of a cnn_lstm config."""

    TOKEN_KIND: ClassVar[str | None] = "words"
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = None

    backbone: str = "resnet50"  # resnet18 | resnet34 | resnet50
    pretrained: bool = True  # ImageNet weights (torchvision); false = random init
    stages: int = 4  # residual stages kept (3 halves the feature stride: 16 instead of 32)
    embed_dim: int = 300  # word embedding size
    hidden_dim: int = 512  # LSTM size per direction
    attention_dim: int = 512  # joint space of the attention
    classifier_dim: int = 1024  # hidden layer of the classifier
    dropout: float = 0.5  # classifier dropout

    def validate(self, where: str) -> None:
        check_choice(where, "backbone", self.backbone, RESNETS)
        check_range(where, "stages", self.stages, 1, 4)
        for key in ("embed_dim", "hidden_dim", "attention_dim", "classifier_dim"):
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "dropout", self.dropout, 0.0, 0.9)


@dataclasses.dataclass(frozen=True)
class ClipClassifierSpec(ModelSpec):
    """The ``model:`` sub-mapping of a clip_classifier config."""

    TOKEN_KIND: ClassVar[str | None] = "hf"
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = None

    checkpoint: str  # hub id or save_pretrained directory of a CLIPModel + processor
    unfreeze_last: int = 2  # last N blocks of each tower trained, with the projections
    hidden_dim: int = 512  # hidden layer of the classifier head
    dropout: float = 0.2  # head dropout

    def validate(self, where: str) -> None:
        check_range(where, "unfreeze_last", self.unfreeze_last, 0)
        check_range(where, "hidden_dim", self.hidden_dim, 1)
        check_range(where, "dropout", self.dropout, 0.0, 0.9)


# Decoding settings the flamingo and blip decoders implement (greedy + sampled extras).
SIMPLE_DECODER_KEYS = ("batch_size", "max_new_tokens", "num_samples", "temperature", "use_cache", "confidence")


@dataclasses.dataclass(frozen=True)
class FlamingoSpec(ModelSpec):
    """The ``model:`` sub-mapping of a flamingo config."""

    TOKEN_KIND: ClassVar[str | None] = None
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = SIMPLE_DECODER_KEYS

    vision: str  # CLIP hub id or directory (CLIPVisionModel.from_pretrained), frozen
    lm: str  # GPT-2 hub id or directory (GPT2LMHeadModel + tokenizer), frozen
    cross_attn_every: int = 1  # a gated cross-attention block before every k-th GPT-2 block
    num_latents: int = 64  # visual tokens the perceiver resampler outputs
    resampler_depth: int = 2  # cross-attention layers of the resampler
    heads: int = 8  # attention heads of the resampler and the gated blocks
    ff_mult: int = 4  # hidden width of the new feed-forward layers, × model width
    answer_head: str = "generate"  # generate: answers are generated | classify: + a head over answers.json
    classifier_weight: float = 1.0  # weight of the head's cross-entropy added to the LM loss
    prompt: str = "Question: {question} Answer:"  # {question} is filled in (with "" for captions)
    max_prompt_tokens: int = 64  # longer prompts keep their last tokens (the "Answer:" cue)
    max_answer_tokens: int = 16  # target tokens before <eos>

    def validate(self, where: str) -> None:
        for key in ("cross_attn_every", "num_latents", "resampler_depth", "heads", "ff_mult",
                    "max_prompt_tokens", "max_answer_tokens"):
            check_range(where, key, getattr(self, key), 1)
        check_choice(where, "answer_head", self.answer_head, ("generate", "classify"))
        check_range(where, "classifier_weight", self.classifier_weight, 0.0)
        try:
            self.prompt.format(question="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{where}: prompt {self.prompt!r} may hold only the placeholder {{question}}") from exc

    def tasks(self) -> tuple[str, ...]:
        # The classification head is over answers.json: captions have none.
        return TASKS if self.answer_head == "generate" else ("vqa",)


@dataclasses.dataclass(frozen=True)
class BlipSpec(ModelSpec):
    """The ``model:`` sub-mapping of a blip config."""

    TOKEN_KIND: ClassVar[str | None] = None
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = SIMPLE_DECODER_KEYS

    checkpoint: str  # hub id or save_pretrained directory (model + BlipProcessor)
    finetune: bool = True  # set by ModelConfig.model_args: false for an entry without train: (zero-shot)
    task: str = "vqa"  # vqa: BlipForQuestionAnswering | caption: BlipForConditionalGeneration
    freeze_vision: bool = False  # keep the ViT frozen (less memory; the text side still trains)
    max_question_tokens: int = 32  # question tokens incl. [CLS] and [SEP]
    max_answer_tokens: int = 24  # answer / caption tokens incl. [DEC] and [SEP]

    def validate(self, where: str) -> None:
        check_choice(where, "task", self.task, ("vqa", "caption"))
        check_range(where, "max_question_tokens", self.max_question_tokens, 2)
        check_range(where, "max_answer_tokens", self.max_answer_tokens, 2)

    def tasks(self) -> tuple[str, ...]:
        return (self.task,)  # BlipForQuestionAnswering answers, BlipForConditionalGeneration captions


@dataclasses.dataclass(frozen=True)
class VlmSftSpec(ModelSpec):
    """The ``model:`` sub-mapping of a ``vlm_sft`` config entry."""

    TOKEN_KIND: ClassVar[str | None] = None
    GENERATION_KEYS: ClassVar[tuple[str, ...] | None] = (
        "batch_size", "max_new_tokens", "num_beams", "do_sample", "num_samples", "temperature", "top_p", "top_k",
        "repetition_penalty", "use_cache", "confidence", "answer_prob_from", "backend",
    )

    checkpoint: str  # hub id (Qwen/Qwen2-VL-2B-Instruct) or a save_pretrained directory
    finetune: bool = True  # set by ModelConfig.model_args: false (no train: block) = the base model, no adapter
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
    caption_prompt: str = DEFAULT_VLM_PROMPT  # the user text of a caption example (caption datasets)
    system_prompt: str | None = None  # None = the chat template's default
    end_of_turn: str | None = None  # None = the architecture's (vlm_sft.ARCHITECTURES) token

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
        check_choice(where, "attn_implementation", self.attn_implementation, ATTENTIONS)
        if self.quantization != "none" and not self.finetune:
            raise ConfigError(f"{where}.quantization: 4bit is for QLoRA fine-tuning; this entry has no train: block "
                              f"(zero-shot)")
        for key in ("min_pixels", "max_pixels"):
            if getattr(self, key) is not None:
                check_range(where, key, getattr(self, key), 28 * 28)

    def tasks(self) -> tuple[str, ...]:
        return TASKS


@dataclasses.dataclass(frozen=True)
class PredictSpec(Spec):
    """The ``predict:`` section of the config (run settings shared by every model)."""

    batch_size: int = 64  # classifier families: questions per batch (generative: generate.batch_size)
    top_k: int = 5  # classifier families: answers (with probabilities) kept per question
    precision: str = "fp32"  # auto | fp32 | bf16 | fp16 (half precision on CUDA only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def validate(self, where: str) -> None:
        check_range(where, "batch_size", self.batch_size, 1)
        check_range(where, "top_k", self.top_k, 1)
        check_choice(where, "precision", self.precision, PRECISIONS)


@dataclasses.dataclass(frozen=True)
class GenerationSpec(Spec):
    """How a generative family answers (the ``generate:`` sub-mapping of its model entry)."""

    batch_size: int = 8  # questions per generate call
    max_new_tokens: int = 16  # longest answer / caption, in tokens
    num_beams: int = 1  # 1 = greedy; > 1 = beam search for the main answer (vlm_sft)
    do_sample: bool = False  # sample the main answer instead, at ``temperature`` (vlm_sft)
    num_samples: int = 0  # extra sampled answers per question (the ``samples`` column; 0 = none)
    temperature: float = 1.0  # sampling temperature (samples, and the main answer if do_sample)
    top_p: float = 1.0  # nucleus sampling mass; 1 = off (vlm_sft)
    top_k: int = 0  # sample among the k most probable tokens; 0 = off (vlm_sft)
    repetition_penalty: float = 1.0  # 1 = off; overrides a checkpoint's generation_config (vlm_sft)
    use_cache: bool = True  # KV-cache; false re-runs the whole prefix every step (O(T^2))
    confidence: str = "product"  # product | mean: which answer probability is the confidence column
    answer_prob_from: str = "auto"  # auto | scores | forward (auto: scores unless beam search; vlm_sft)
    backend: str = "hf"  # hf | vllm (vlm_sft; vllm: no beams, no forward pass; needs the vllm package)

    def validate(self, where: str) -> None:
        for key in ("batch_size", "max_new_tokens", "num_beams"):
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "num_samples", self.num_samples, 0)
        check_range(where, "temperature", self.temperature, 1e-6)
        check_range(where, "top_p", self.top_p, 1e-6, 1.0)
        check_range(where, "top_k", self.top_k, 0)
        check_choice(where, "confidence", self.confidence, CONFIDENCES)
        check_choice(where, "answer_prob_from", self.answer_prob_from, PROB_SOURCES)
        check_choice(where, "backend", self.backend, BACKENDS)
        if self.answer_prob_from == "scores" and self.num_beams > 1:
            raise ConfigError(f"{where}: answer_prob_from=scores needs num_beams=1 (beam logits are per beam)")


def check_generation_keys(spec: GenerationSpec, honoured: tuple[str, ...], family: str, where: str) -> None:
    """Fail when ``spec`` changes a decoding setting that ``family``'s decoder does not implement."""
    default = GenerationSpec()
    for field in dataclasses.fields(GenerationSpec):
        if field.name not in honoured and getattr(spec, field.name) != getattr(default, field.name):
            raise ConfigError(
                f"{where}: {field.name} is not implemented by the {family} decoder; it honours {', '.join(honoured)}"
            )


CAPTION_KIND_NAMES = ("blip", "flamingo", "vlm")  # keys of medvqa.inference.caption_models.CAPTION_KINDS
# CaptionSpec settings a kind's captioner does not implement: each must keep its default.
# (flamingo decodes greedily from its own model.prompt.)
CAPTION_UNSUPPORTED = {
    "blip": ("system_prompt", "min_pixels", "max_pixels", "backend"),
    "flamingo": ("prompt", "system_prompt", "min_pixels", "max_pixels", "num_beams", "do_sample", "temperature",
                 "top_p", "top_k", "repetition_penalty", "backend"),
    "vlm": (),
}


@dataclasses.dataclass(frozen=True)
class CaptionSpec(Spec):
    """The ``caption:`` settings of one captioning model (plus ``kind`` and ``checkpoint``)."""

    kind: str  # blip | flamingo | vlm (a key of CAPTION_KINDS)
    checkpoint: str | None = None  # hub id or save_pretrained dir; None only when a run dir is given
    # vlm: user text after the image (None: a fine-tuned run's model.caption_prompt, else
    # DEFAULT_VLM_PROMPT); blip: caption prefix (None: none); flamingo: its model.prompt instead
    prompt: str | None = None
    system_prompt: str | None = None  # vlm: system turn; None = the chat template's default
    batch_size: int = 8  # images per generate call
    chunk_size: int = 64  # images per resumable chunk file (a killed run loses at most one chunk)
    max_new_tokens: int = 64  # longest caption, in tokens
    num_beams: int = 1  # 1 = greedy; > 1 = beam search
    do_sample: bool = False  # sample instead (seeded per chunk from the run's seed)
    temperature: float = 1.0  # sampling temperature (do_sample only)
    top_p: float = 1.0  # nucleus mass (do_sample only); 1 = off
    top_k: int = 0  # sample among the k most probable tokens; 0 = off
    repetition_penalty: float = 1.0  # > 1 discourages repeated tokens; 1 = off
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16
    min_pixels: int | None = None  # vlm, Qwen-VL processors: fewest pixels an image is resized to
    max_pixels: int | None = None  # vlm, Qwen-VL processors: most pixels (caps the image tokens)
    backend: str = "hf"  # vlm: hf (Hugging Face generate) | vllm (medvqa.inference.vllm_backend: no beams)

    def validate(self, where: str) -> None:
        check_choice(where, "kind", self.kind, CAPTION_KIND_NAMES)
        check_choice(where, "backend", self.backend, BACKENDS)
        check_choice(where, "dtype", self.dtype, DTYPES)
        for key in ("batch_size", "chunk_size", "max_new_tokens", "num_beams"):
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "temperature", self.temperature, 1e-6)
        check_range(where, "top_p", self.top_p, 1e-6, 1.0)
        check_range(where, "top_k", self.top_k, 0)
        check_range(where, "repetition_penalty", self.repetition_penalty, 1e-6)
        for key in ("min_pixels", "max_pixels"):
            if getattr(self, key) is not None:
                check_range(where, key, getattr(self, key), 28 * 28)
        if self.do_sample and self.num_beams > 1:
            raise ConfigError(f"{where}: do_sample needs num_beams=1 (beam sampling is not supported)")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key in CAPTION_UNSUPPORTED[self.kind]:
            if getattr(self, key) != defaults[key]:
                raise ConfigError(f"{where}: {key} is not a setting of the {self.kind} captioner")
