"""A tiny stand-in for a CLIP checkpoint (the ``clip`` kind of ``medvqa.demo.tiny_checkpoints``).

Hub weights cannot be fetched in the offline demo, tests and CI, so this writes a tiny,
randomly initialised CLIP in exactly the layout ``save_pretrained`` gives a hub checkpoint:
config.json + model.safetensors + tokenizer (tokenizer.json, tokenizer_config.json) +
processor (preprocessor_config.json / processor_config.json). ``CLIPModel.from_pretrained(dir)``
and ``AutoProcessor.from_pretrained(dir)`` load it exactly as they load
``openai/clip-vit-base-patch32``, so the real loading code is what the demo exercises.

The tokenizer is a byte-level BPE learnt offline (``medvqa.demo.tiny_bpe``) from the dataset's questions,
with CLIP's normaliser, pre-tokeniser, ``</w>`` word suffix and special tokens.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from medvqa.demo.tiny_bpe import learn_bpe, word_counts
from medvqa.io import atomic_dir
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError, Spec, check_range

log = logging.getLogger(__name__)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIPTokenizer's own pre-tokeniser pattern: the trained merges must split text the same way.
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# OpenAI CLIP's image statistics, so the tiny processor normalises like the real one.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class TinyClipSpec(Spec):
    """Size of the tiny CLIP (the image size and seed are arguments of ``write_tiny_clip``)."""

    patch_size: int = 8
    hidden_size: int = 64
    layers: int = 2
    heads: int = 2
    projection_dim: int = 64
    vocab_size: int = 512
    max_length: int = 64

    def validate(self, where: str) -> None:
        for key in ("patch_size", "hidden_size", "layers", "heads", "projection_dim", "max_length"):
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "vocab_size", self.vocab_size, 300)
        if self.hidden_size % self.heads:
            raise ConfigError(f"{where}: hidden_size must divide by heads")


def train_clip_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int):
    """A CLIPTokenizer whose byte-level BPE merges are learnt from ``texts`` (offline)."""
    from tokenizers import Regex, normalizers, pre_tokenizers
    from transformers import CLIPTokenizer

    normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    counts = word_counts(texts, normalizer, pre_tokenizer)
    vocab, merges = learn_bpe(counts, vocab_size, [BOS, EOS], pre_tokenizers.ByteLevel.alphabet(), suffix="</w>")
    return CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=max_length,
        bos_token=BOS, eos_token=EOS, pad_token=EOS, unk_token=EOS,
    )


def tiny_clip_config(spec: TinyClipSpec, tokenizer, image_size: int):
    from transformers import CLIPConfig

    common = dict(
        hidden_size=spec.hidden_size, intermediate_size=4 * spec.hidden_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
    )
    text = dict(
        common, vocab_size=len(tokenizer), max_position_embeddings=spec.max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(common, image_size=image_size, patch_size=spec.patch_size)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=spec.projection_dim)


def write_tiny_clip(
    out_dir: str | Path, texts: Iterable[str], image_size: int, seed: int, spec: TinyClipSpec | None = None
) -> Path:
    """Write a tiny random CLIP checkpoint (model + tokenizer + processor) into ``out_dir``.

    ``image_size`` should equal the dataset's image cache size (a multiple of the patch size).
    """
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    spec = spec or TinyClipSpec()
    if image_size % spec.patch_size:
        raise ConfigError(f"tiny CLIP: image size {image_size} is not a multiple of {spec.patch_size}")
    seed_everything(seed)
    tokenizer = train_clip_tokenizer(texts, spec.vocab_size, spec.max_length)
    model = CLIPModel(tiny_clip_config(spec, tokenizer, image_size))
    size = {"shortest_edge": image_size}
    crop = {"height": image_size, "width": image_size}
    image_processor = CLIPImageProcessor(size=size, crop_size=crop, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp)
        # preprocessor_config.json as well, as hub checkpoints have it (older loaders read only that).
        image_processor.save_pretrained(tmp)
    log.info(
        "tiny CLIP: %d parameters, vocabulary %d, images %dx%d → %s",
        sum(p.numel() for p in model.parameters()), len(tokenizer), image_size, image_size, out_dir,
    )
    return out_dir
