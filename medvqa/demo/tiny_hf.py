"""Tiny stand-ins for the generative families' checkpoints: texts → save_pretrained directories.

Hub weights cannot be fetched offline (demo, tests, CI), so these writers build tiny,
randomly initialised models in exactly the layout ``save_pretrained`` gives the real ones:

* ``write_tiny_clip_gpt2(out_dir, texts, seed)`` → ``out_dir/clip`` (a whole CLIP written by
  ``medvqa.demo.pretrained.write_tiny_clip``, the layout of ``openai/clip-vit-base-patch32``, from
  which ``CLIPVisionModel.from_pretrained`` takes the vision tower) and ``out_dir/gpt2``
  (``GPT2LMHeadModel`` + a ``GPT2Tokenizer``), for the ``flamingo`` family.
* ``write_tiny_blip(out_dir, texts, seed, task)`` → ``BlipForQuestionAnswering`` (task "vqa",
  like ``Salesforce/blip-vqa-base``) or ``BlipForConditionalGeneration`` (task "caption", like
  ``Salesforce/blip-image-captioning-base``) + ``BlipProcessor``.

Tokenizers are learnt offline from ``texts`` by ``medvqa.demo.tiny_bpe`` (deterministic ties): GPT-2's byte-level
BPE with ``<|endoftext|>``, and BERT's lower-cased WordPiece with BLIP's special tokens
(``[PAD] [UNK] [CLS] [SEP] [MASK]`` and the decoder start token ``[DEC]``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from medvqa.data.schema import read_text_columns, task_of
from medvqa.demo.pretrained import CLIP_MEAN, CLIP_STD, TinyClipSpec, write_tiny_clip
from medvqa.demo.tiny_bpe import learn_bpe, learn_wordpiece, word_counts
from medvqa.io import atomic_dir
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BLIP_DECODER_START = "[DEC]"  # BLIP's text_config.bos_token_id: the first decoder input


@dataclasses.dataclass(frozen=True)
class TinyHFSpec(Spec):
    """Size of the tiny models (image size and seed are arguments of the writers)."""

    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    patch_size: int = 8
    vocab_size: int = 400  # BPE / WordPiece target size (byte-level BPE needs > 257)
    max_length: int = 128  # positions of the text models

    def validate(self, where: str) -> None:
        for key in ("hidden_size", "layers", "heads", "patch_size", "max_length"):
            check_range(where, key, getattr(self, key), 1)
        check_range(where, "vocab_size", self.vocab_size, 300)
        if self.hidden_size % self.heads:
            raise ConfigError(f"{where}: hidden_size must divide by heads")


def train_gpt2_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int):
    """A GPT2Tokenizer whose byte-level BPE merges are learnt from ``texts`` (offline)."""
    from tokenizers import pre_tokenizers
    from transformers import GPT2Tokenizer

    counts = word_counts(texts, pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False))
    vocab, merges = learn_bpe(counts, vocab_size, [EOT], pre_tokenizers.ByteLevel.alphabet())
    # Like the real "gpt2" tokenizer: no padding token; collators pad with <|endoftext|>.
    return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def train_blip_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int):
    """A BertTokenizer (lower-cased WordPiece) learnt from ``texts``, with BLIP's special tokens."""
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer

    counts = word_counts(texts, normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer())
    vocab = learn_wordpiece(counts, vocab_size, [*BERT_SPECIALS, BLIP_DECODER_START])
    return BertTokenizer(vocab=vocab, model_max_length=max_length, bos_token=BLIP_DECODER_START)


def write_tiny_gpt2(out_dir: str | Path, texts: Iterable[str], seed: int, spec: TinyHFSpec | None = None) -> Path:
    """A tiny random GPT2LMHeadModel + tokenizer in ``out_dir``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    spec = spec or TinyHFSpec()
    seed_everything(seed)
    tokenizer = train_gpt2_tokenizer(texts, spec.vocab_size, spec.max_length)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=spec.max_length, n_embd=spec.hidden_size, n_layer=spec.layers,
        n_head=spec.heads, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        # With the default 0.02 a tiny frozen GPT-2's tied output head can only produce logits
        # within about ±0.6 (LayerNorm fixes the hidden norm), so no fine-tune of new layers
        # could make it confident; 0.2 gives it a usable range.
        initializer_range=0.2,
    )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        GPT2LMHeadModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def write_tiny_clip_gpt2(
    out_dir: str | Path, texts: Iterable[str], seed: int, image_size: int = 32, spec: TinyHFSpec | None = None
) -> dict[str, Path]:
    """{"vision": out_dir/clip, "lm": out_dir/gpt2}: the two checkpoints of a tiny ``flamingo``."""
    spec = spec or TinyHFSpec()
    texts = list(texts)
    out_dir = Path(out_dir)
    clip_spec = TinyClipSpec(
        patch_size=spec.patch_size, hidden_size=spec.hidden_size, layers=spec.layers, heads=spec.heads,
        projection_dim=spec.hidden_size, vocab_size=spec.vocab_size, max_length=spec.max_length,
    )
    # Both checkpoints go into one temporary folder, so out_dir never holds only one of them.
    with atomic_dir(out_dir) as tmp:
        write_tiny_clip(tmp / "clip", texts, image_size, seed, clip_spec)
        write_tiny_gpt2(tmp / "gpt2", texts, seed + 1, spec)
    log.info("tiny CLIP + GPT-2 (width %d, %d layers) → %s", spec.hidden_size, spec.layers, out_dir)
    return {"vision": out_dir / "clip", "lm": out_dir / "gpt2"}


def tiny_blip_config(spec: TinyHFSpec, tokenizer, image_size: int):
    from transformers import BlipConfig

    ids = tokenizer.get_vocab()
    common = dict(
        hidden_size=spec.hidden_size, intermediate_size=4 * spec.hidden_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
    )
    text = dict(
        common, vocab_size=len(tokenizer), encoder_hidden_size=spec.hidden_size,
        max_position_embeddings=spec.max_length, bos_token_id=ids[BLIP_DECODER_START],
        pad_token_id=ids["[PAD]"], sep_token_id=ids["[SEP]"], eos_token_id=ids["[SEP]"],
    )
    # BlipVisionConfig's default initializer_range (1e-10) would make every image look alike.
    vision = dict(common, image_size=image_size, patch_size=spec.patch_size, initializer_range=0.02)
    return BlipConfig(
        text_config=text, vision_config=vision, projection_dim=spec.hidden_size,
        image_text_hidden_size=spec.hidden_size,
    )


def write_tiny_blip(
    out_dir: str | Path, texts: Iterable[str], seed: int, task: str = "vqa", image_size: int = 32,
    spec: TinyHFSpec | None = None,
) -> Path:
    """A tiny random BLIP (VQA or captioning) + BlipProcessor in ``out_dir``."""
    from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    check_choice("tiny BLIP", "task", task, ("vqa", "caption"))
    spec = spec or TinyHFSpec()
    if image_size % spec.patch_size:
        raise ConfigError(f"tiny BLIP: image_size {image_size} is not a multiple of patch_size {spec.patch_size}")
    seed_everything(seed)
    tokenizer = train_blip_tokenizer(texts, spec.vocab_size, spec.max_length)
    model_class = BlipForQuestionAnswering if task == "vqa" else BlipForConditionalGeneration
    model = model_class(tiny_blip_config(spec, tokenizer, image_size))
    image_processor = BlipImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=CLIP_MEAN, image_std=CLIP_STD
    )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp)
    log.info("tiny BLIP (%s): %d parameters → %s", task, sum(p.numel() for p in model.parameters()), out_dir)
    return out_dir


def texts_of(train_path: str | Path) -> list[str]:
    """The train split's questions and answers (or captions): what the tokenizers learn from."""
    rows = read_text_columns(train_path)
    columns = ["question", "answer"] if task_of(rows) == "vqa" else ["caption"]
    return [str(t) for column in columns for t in rows[column]]
