"""Tiny stand-ins for Hugging Face VLM checkpoints: texts → ``{out_dir}/`` in ``save_pretrained`` layout.

Hub weights cannot be fetched in tests, CI or the offline demo, so ``write_tiny_vlm`` writes a
randomly initialised model of the real architecture, with a tokenizer, chat template and
processor of the real classes, into one directory:

    config.json, generation_config.json, model.safetensors       (the model)
    tokenizer.json, tokenizer_config.json, chat_template.jinja   (the tokenizer)
    processor_config.json                                        (image/video processor + processor)

``AutoProcessor.from_pretrained(dir)`` and ``AutoModelForImageTextToText.from_pretrained(dir)``
load it exactly as they load ``Qwen/Qwen2-VL-2B-Instruct``, ``Qwen/Qwen2.5-VL-3B-Instruct``,
``OpenGVLab/InternVL3-1B-hf``, ``llava-hf/llava-1.5-7b-hf`` and
``llava-hf/llava-v1.6-mistral-7b-hf`` (same model_type, classes, special tokens and template).

Tokenizers are BPEs learnt offline (``demo.tiny_bpe``, deterministic) from ``texts`` plus the chat template's fixed
words: byte-level with Qwen2's pre-tokeniser for the Qwen and InternVL families, SentencePiece-style
(▁ word boundaries, byte fallback) for the LLaMA/Mistral language models of LLaVA.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from medvqa.demo.tiny_bpe import learn_bpe, word_counts
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

TINY_ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl", "internvl", "llava", "llava_next")

# Special tokens of the Qwen2 tokenizer family, in the order (and so the relative ids) of the real one.
QWEN_SPECIALS = (
    "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
# InternVL3-hf adds these after Qwen2.5's; the processor finds them by name on the tokenizer.
INTERNVL_SPECIALS = (
    "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>", "<video>",
)
INTERNVL_NAMED = {
    "start_image_token": "<img>", "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>",
}

# Chat templates equivalent to the ones the real checkpoints ship (chat_template.json / .jinja).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
LLAVA_TEMPLATE = (  # llava-hf/llava-1.5-*-hf (Vicuna style)
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_NEXT_TEMPLATE = (  # llava-hf/llava-v1.6-mistral-7b-hf (Mistral [INST] style)
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# Words the templates add around every conversation; the tokenizer learns them too.
TEMPLATE_WORDS = ("system", "user", "assistant", "USER: ASSISTANT:", "[INST] [/INST]", "You are a helpful assistant.")


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


def _append_tokens(vocab: dict[str, int], tokens: Iterable[str]) -> dict[str, int]:
    """``vocab`` with ``tokens`` appended at the next ids, as the real added tokens sit after the BPE."""
    vocab = dict(vocab)
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def train_qwen_tokenizer(texts: Iterable[str], vocab_size: int, specials: tuple[str, ...], named: dict | None = None):
    """A ``Qwen2Tokenizer`` (byte-level BPE, Qwen2 pre-tokeniser) learnt from ``texts`` offline."""
    from tokenizers import Regex, normalizers, pre_tokenizers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    counts = word_counts([*texts, *TEMPLATE_WORDS], normalizers.NFC(), pre_tokenizer)
    vocab, merges = learn_bpe(counts, vocab_size, alphabet=pre_tokenizers.ByteLevel.alphabet())
    vocab = _append_tokens(vocab, ("<|endoftext|>", *specials, *(named or {}).values()))
    extra = dict(named) if named else list(specials)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, extra_special_tokens=extra,
    )
    if named:  # named tokens (InternVL) register only themselves as special; add the rest explicitly
        tokenizer.add_tokens([t for t in specials if t not in named.values()], special_tokens=True)
    return tokenizer


def train_llama_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``LlamaTokenizer`` (▁-prefixed BPE with byte fallback) plus LLaVA's ``<image>`` and ``<pad>``."""
    from tokenizers import pre_tokenizers
    from transformers import LlamaTokenizer

    # Splitting at spaces and punctuation while learning keeps merges inside words, as
    # SentencePiece's trainer does (it never merges across a ▁ boundary or a script change).
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
        pre_tokenizers.Punctuation(behavior="isolated"),
    ])
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    counts = word_counts([*texts, *TEMPLATE_WORDS], pre_tokenizer=pre_tokenizer)
    vocab, merges = learn_bpe(counts, vocab_size + 259, ["<unk>", "<s>", "</s>", *byte_tokens])
    vocab = _append_tokens(vocab, ("<image>", "<pad>"))
    tokenizer = LlamaTokenizer(
        vocab=vocab, merges=merges, pad_token="<pad>", add_bos_token=True,
        extra_special_tokens={"image_token": "<image>"},
    )
    return tokenizer


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


def _build(arch: str, spec: TinyVlmSpec, texts: list[str]):
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        return _qwen_vl(spec, texts, "2" if arch == "qwen2_vl" else "2.5")
    if arch == "internvl":
        return _internvl(spec, texts)
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
    stops = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.eos_token_id = stops if "<|im_end|>" in tokenizer.get_vocab() else tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    log.info("tiny %s: %d parameters, vocabulary %d → %s",
             arch, sum(p.numel() for p in model.parameters()), len(tokenizer), out_dir)
    return out_dir
