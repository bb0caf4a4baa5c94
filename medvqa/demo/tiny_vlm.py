"""Tiny stand-ins for Hugging Face VLM checkpoints: texts → ``{out_dir}/`` in ``save_pretrained`` layout.

Hub weights cannot be fetched in tests, CI or the offline demo, so ``write_tiny_vlm`` writes a
randomly initialised model of the real architecture, with a tokenizer, chat template and
processor of the real classes, into one directory:

    config.json, generation_config.json, model.safetensors       (the model)
    tokenizer.json, tokenizer_config.json, chat_template.jinja   (the tokenizer)
    processor_config.json                                        (image/video processor + processor)

``AutoProcessor.from_pretrained(dir)`` and ``AutoModelForImageTextToText.from_pretrained(dir)``
load it exactly as they load ``Qwen/Qwen2-VL-2B-Instruct``, ``Qwen/Qwen2.5-VL-3B-Instruct``,
``Qwen/Qwen3-VL-2B-Instruct``, ``OpenGVLab/InternVL3-1B-hf``, ``llava-hf/llava-1.5-7b-hf``,
``llava-hf/llava-v1.6-mistral-7b-hf``, ``google/medgemma-4b-it`` (Gemma 3) and
``HuggingFaceTB/SmolVLM-256M-Instruct`` (Idefics3) (same model_type, classes,
special tokens and template; templates in ``medvqa.demo.tiny_vlm_templates``).

Tokenizers are the real classes with BPEs learnt offline from ``texts`` (``medvqa.demo.tiny_vlm_tokenizers``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from medvqa.demo.tiny_vlm_templates import (
    GEMMA3_TEMPLATE, INTERNVL_TEMPLATE, LLAVA_NEXT_TEMPLATE, LLAVA_TEMPLATE, QWEN2_VL_TEMPLATE, QWEN3_VL_TEMPLATE,
    SMOLVLM_TEMPLATE,
)
from medvqa.demo.tiny_vlm_tokenizers import (
    INTERNVL_NAMED, INTERNVL_SPECIALS, QWEN_SPECIALS, train_gemma_tokenizer, train_llama_tokenizer,
    train_qwen_tokenizer, train_smollm_tokenizer,
)
from medvqa.io import atomic_dir
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

TINY_ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "llava", "llava_next", "gemma3", "idefics3")

# generation_config.eos_token_id of the real chat checkpoints: (end of turn, eos) by the end-of-turn token.
# SmolLM2 also has <|im_end|>, so SmolVLM's <end_of_utterance> is looked for first.
STOP_TOKENS = (("<end_of_utterance>", "<|im_end|>"), ("<|im_end|>", "<|endoftext|>"), ("<end_of_turn>", "<eos>"))


@dataclasses.dataclass(frozen=True)
class TinyVlmSpec(Spec):
    """Sizes of a tiny VLM; ``image_size`` is the side the processor resizes images to."""

    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vision_hidden_size: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 56
    vocab_size: int = 600
    # Weight init of the language model. With the usual 0.02 a tiny random LM's output head gives
    # nearly flat logits (hidden size 64), which LoRA on the attention cannot sharpen; 0.2 can.
    initializer_range: float = 0.2

    def validate(self, where: str) -> None:
        sizes = ("hidden_size", "layers", "heads", "kv_heads", "vision_hidden_size", "vision_layers", "vision_heads")
        for key in sizes:
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "vocab_size", self.vocab_size, 300)
        check_range(where, "initializer_range", self.initializer_range, 1e-6, 1.0)
        if self.image_size % 28:
            raise ConfigError(f"{where}: image_size must be a multiple of 28 (patch 14 × merge 2)")
        head_dim = self.hidden_size // self.heads
        if self.hidden_size % self.heads or self.heads % self.kv_heads or head_dim % 4:
            raise ConfigError(f"{where}: hidden_size/heads must divide evenly, with head_dim a multiple of 4")


def _text_config(spec: TinyVlmSpec, tokenizer, model_type: str | None = None, **extra) -> dict:
    config = dict(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=2 * spec.hidden_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
        max_position_embeddings=1024, initializer_range=spec.initializer_range, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **extra,
    )
    return {"model_type": model_type, **config} if model_type else config


def _mrope(spec: TinyVlmSpec) -> dict:
    """M-RoPE splits head_dim/2 rotary frequencies over (time, height, width), as 16/24/24 does for 128."""
    half = spec.hidden_size // spec.heads // 2
    section = [half // 4, half * 3 // 8]
    return {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [*section, half - sum(section)]}


def _qwen_vl(spec: TinyVlmSpec, texts: list[str], version: str):
    """Qwen2-VL (version '2') or Qwen2.5-VL ('2.5'): model and Qwen2VL/Qwen2_5_VL processor."""
    import transformers as tf

    tokenizer = train_qwen_tokenizer(texts, spec.vocab_size, QWEN_SPECIALS)
    pixels = dict(min_pixels=28 * 28, max_pixels=spec.image_size**2, patch_size=14, merge_size=2, temporal_patch_size=2)
    video = tf.Qwen2VLVideoProcessor(**{**pixels, "max_pixels": 4 * spec.image_size**2})
    vision = dict(depth=spec.vision_layers, hidden_size=spec.vision_hidden_size, num_heads=spec.vision_heads,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    if version == "2":
        vision = dict(vision, embed_dim=spec.vision_hidden_size, hidden_size=spec.hidden_size, mlp_ratio=2)
        config_cls, model_cls, processor_cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor
    else:
        vision = dict(vision, intermediate_size=2 * spec.vision_hidden_size, out_hidden_size=spec.hidden_size,
                      window_size=2 * 14 * 2, fullatt_block_indexes=[spec.vision_layers - 1])
        config_cls = tf.Qwen2_5_VLConfig
        model_cls, processor_cls = tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor
    ids = tokenizer.convert_tokens_to_ids
    config = config_cls(
        text_config=_text_config(spec, tokenizer, rope_parameters=_mrope(spec)), vision_config=vision,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    processor = processor_cls(image_processor=tf.Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
                              video_processor=video, chat_template=QWEN2_VL_TEMPLATE)
    return model_cls(config), processor


def _internvl(spec: TinyVlmSpec, texts: list[str]):
    """InternVL3 (HF-native): InternViT-style vision tower, pixel-shuffle projector, Qwen2 LM."""
    import transformers as tf

    tokenizer = train_qwen_tokenizer(texts, spec.vocab_size, (*QWEN_SPECIALS, *INTERNVL_SPECIALS), INTERNVL_NAMED)
    side = spec.image_size
    # Pixel shuffle with downsample_ratio 0.5 merges 2×2 patches into one LM token.
    image_seq_length = (side // 14) ** 2 // 4
    vision = dict(hidden_size=spec.vision_hidden_size, num_hidden_layers=spec.vision_layers,
                  num_attention_heads=spec.vision_heads, intermediate_size=2 * spec.vision_hidden_size,
                  image_size=[side, side], patch_size=[14, 14])
    config = tf.InternVLConfig(
        vision_config=vision, text_config=_text_config(spec, tokenizer, "qwen2"),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=image_seq_length,
    )
    image_processor = tf.GotOcr2ImageProcessor(
        size={"height": side, "width": side}, crop_to_patches=False, max_patches=4,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    video = tf.InternVLVideoProcessor(size={"height": side, "width": side})
    processor = tf.InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video,
                                     image_seq_length=image_seq_length, chat_template=INTERNVL_TEMPLATE)
    return tf.InternVLForConditionalGeneration(config), processor


def _llava(spec: TinyVlmSpec, texts: list[str], next_version: bool):
    """LLaVA-1.5 (CLIP ViT + MLP projector + LLaMA) or LLaVA-NeXT (the same with any-resolution tiles)."""
    import transformers as tf

    tokenizer = train_llama_tokenizer(texts, spec.vocab_size)
    tile = spec.image_size // 2  # CLIP sees tiles of this side; NeXT tiles a 2×2 grid of them
    vision = dict(model_type="clip_vision_model", hidden_size=spec.vision_hidden_size,
                  intermediate_size=2 * spec.vision_hidden_size, num_hidden_layers=spec.vision_layers,
                  num_attention_heads=spec.vision_heads, image_size=tile, patch_size=14,
                  projection_dim=spec.vision_hidden_size)
    tokens = (tile // 14) ** 2  # "default" feature strategy drops CLS: one token per patch
    common = dict(vision_config=vision, text_config=_text_config(spec, tokenizer, "llama"),
                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=tokens)
    clip = dict(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile})
    processor_args = dict(tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)
    if not next_version:
        processor = tf.LlavaProcessor(image_processor=tf.CLIPImageProcessor(**clip), chat_template=LLAVA_TEMPLATE,
                                      **processor_args)
        return tf.LlavaForConditionalGeneration(tf.LlavaConfig(**common)), processor
    pinpoints = [[tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    config = tf.LlavaNextConfig(**common, image_grid_pinpoints=pinpoints)
    image_processor = tf.LlavaNextImageProcessor(**clip, image_grid_pinpoints=pinpoints)
    processor = tf.LlavaNextProcessor(image_processor=image_processor, chat_template=LLAVA_NEXT_TEMPLATE,
                                      **processor_args)
    return tf.LlavaNextForConditionalGeneration(config), processor


def _qwen3_vl(spec: TinyVlmSpec, texts: list[str]):
    """Qwen3-VL: 16-pixel patches, DeepStack vision features, interleaved M-RoPE, Qwen3 LM (explicit head_dim)."""
    import transformers as tf

    tokenizer = train_qwen_tokenizer(texts, spec.vocab_size, QWEN_SPECIALS)
    head_dim = spec.hidden_size // spec.heads
    rope = {**_mrope(spec), "rope_theta": 5_000_000.0, "mrope_interleaved": True}
    # Patch 16 × merge 2: the processor resizes to multiples of 32 within this pixel budget.
    pixels = dict(min_pixels=32 * 32, max_pixels=(-(-spec.image_size // 32) * 32) ** 2, patch_size=16, merge_size=2,
                  temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    vision = dict(depth=spec.vision_layers, hidden_size=spec.vision_hidden_size, num_heads=spec.vision_heads,
                  intermediate_size=2 * spec.vision_hidden_size, out_hidden_size=spec.hidden_size, patch_size=16,
                  num_position_embeddings=64, deepstack_visual_indexes=[0])
    ids = tokenizer.convert_tokens_to_ids
    config = tf.Qwen3VLConfig(
        text_config=_text_config(spec, tokenizer, head_dim=head_dim, rope_parameters=rope), vision_config=vision,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,  # as the 2B/4B checkpoints
    )
    video = tf.Qwen3VLVideoProcessor(size={"shortest_edge": 32 * 32, "longest_edge": 4 * spec.image_size**2},
                                     patch_size=16, merge_size=2, temporal_patch_size=2)
    processor = tf.Qwen3VLProcessor(image_processor=tf.Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
                                    video_processor=video, chat_template=QWEN3_VL_TEMPLATE)
    return tf.Qwen3VLForConditionalGeneration(config), processor


def _gemma3(spec: TinyVlmSpec, texts: list[str]):
    """Gemma 3 / MedGemma: SigLIP tower, average-pooled to ``(image_size / 28)²`` soft tokens, Gemma 3 LM."""
    import torch
    import transformers as tf

    tokenizer = train_gemma_tokenizer(texts, spec.vocab_size)
    side, head_dim = spec.image_size, spec.hidden_size // spec.heads
    # 4 sliding-window layers to 1 global in the real model; a tiny one keeps one of each.
    layer_types = ["sliding_attention"] * (spec.layers - 1) + ["full_attention"]
    text = _text_config(spec, tokenizer, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=512,
                        layer_types=layer_types)
    vision = dict(hidden_size=spec.vision_hidden_size, intermediate_size=2 * spec.vision_hidden_size,
                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads, image_size=side,
                  patch_size=14, vision_use_head=False)
    tokens = (side // 28) ** 2  # 2×2 average pooling of the 14-pixel patches
    ids = tokenizer.convert_tokens_to_ids
    config = tf.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=tokens, boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"), image_token_index=ids("<image_soft_token>"),
        initializer_range=spec.initializer_range,  # Gemma 3 initialises every weight from the top-level value
        # The real checkpoints tie the output head to the embeddings; a random tied tiny model only echoes
        # its last input token (the "\n" closing the prompt), so generation tests would see empty text.
        tie_word_embeddings=False,
    )
    image_processor = tf.Gemma3ImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3)
    processor = tf.Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                   chat_template=GEMMA3_TEMPLATE, image_seq_length=tokens)
    model = tf.Gemma3ForConditionalGeneration(config)
    # Gemma 3 initialises the vision→text projection to zeros (a fresh model ignores images); a trained
    # checkpoint's is not, so the stand-in's is random like its other weights.
    projection = model.model.multi_modal_projector.mm_input_projection_weight
    torch.nn.init.normal_(projection.data, std=spec.initializer_range)
    return model, processor


def _idefics3(spec: TinyVlmSpec, texts: list[str]):
    """SmolVLM (Idefics3 architecture): SigLIP-style tower, pixel-shuffle connector, LLaMA (SmolLM2) LM."""
    import transformers as tf

    tokenizer = train_smollm_tokenizer(texts, spec.vocab_size)
    side = spec.image_size
    # Pixel shuffle by 2 merges 2×2 patches into one LM token; one global image, no tiles.
    image_seq_len = (side // 14) ** 2 // 4
    vision = dict(hidden_size=spec.vision_hidden_size, intermediate_size=2 * spec.vision_hidden_size,
                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads, image_size=side,
                  patch_size=14)
    config = tf.Idefics3Config(vision_config=vision, text_config=_text_config(spec, tokenizer, "llama"),
                               scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    image_processor = tf.Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": side}, max_image_size={"longest_edge": side},
        image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                     image_seq_len=image_seq_len, chat_template=SMOLVLM_TEMPLATE)
    return tf.Idefics3ForConditionalGeneration(config), processor


def _build(arch: str, spec: TinyVlmSpec, texts: list[str]):
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        return _qwen_vl(spec, texts, "2" if arch == "qwen2_vl" else "2.5")
    if arch == "qwen3_vl":
        return _qwen3_vl(spec, texts)
    if arch == "internvl":
        return _internvl(spec, texts)
    if arch == "gemma3":
        return _gemma3(spec, texts)
    if arch == "idefics3":
        return _idefics3(spec, texts)
    return _llava(spec, texts, next_version=arch == "llava_next")


def write_tiny_vlm(
    arch: str, out_dir: str | Path, texts: Iterable[str], seed: int, spec: TinyVlmSpec | None = None
) -> Path:
    """Write a tiny random ``arch`` checkpoint (model + tokenizer + chat template + processor) to ``out_dir``.

    ``arch`` is one of ``TINY_ARCHITECTURES``; ``texts`` (questions, answers) train the tokenizer.
    """
    check_choice("write_tiny_vlm", "arch", arch, TINY_ARCHITECTURES)
    spec = spec or TinyVlmSpec()
    seed_everything(seed)
    model, processor = _build(arch, spec, [str(t) for t in texts])
    tokenizer = processor.tokenizer
    # Real checkpoints stop on the end-of-turn token as well as on the tokenizer's eos.
    vocab = tokenizer.get_vocab()
    stops = next(([vocab[t] for t in pair] for pair in STOP_TOKENS if pair[0] in vocab), tokenizer.eos_token_id)
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    log.info("tiny %s: %d parameters, vocabulary %d → %s",
             arch, sum(p.numel() for p in model.parameters()), len(tokenizer), out_dir)
    return out_dir
