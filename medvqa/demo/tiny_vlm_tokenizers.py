"""Tokenizers of the tiny VLM stand-ins (``medvqa.demo.tiny_vlm``), learnt offline from a few texts.

Each is the real checkpoint's tokenizer class with its special tokens in the real order
(relative ids), its BPE learnt by ``medvqa.demo.tiny_bpe`` (deterministic) from the texts plus the
words the chat templates add: byte-level with Qwen2's pre-tokeniser (Qwen, InternVL), byte-level
GPT-2 style (SmolVLM's SmolLM2), SentencePiece-style ▁ pieces with byte fallback (LLaMA/Mistral
of LLaVA; Gemma, which adds no ▁ before the first word).
"""

from __future__ import annotations

from collections.abc import Iterable

from medvqa.demo.tiny_bpe import learn_bpe, word_counts

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

# Gemma's special tokens: control tokens first (ids 0-4, turn markers at 105/106 in the real one), image tokens last.
GEMMA_CONTROL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")
GEMMA_NAMED = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
# SmolVLM (Idefics3): SmolLM2's control tokens, then the image-layout tokens the processor looks up.
SMOLVLM_CONTROL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
SMOLVLM_IMAGE = (
    "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)

# Words the templates add around every conversation; the tokenizer learns them too.
TEMPLATE_WORDS = ("system", "user", "assistant", "model", "USER: ASSISTANT:", "[INST] [/INST]",
                  "You are a helpful assistant.")



def append_tokens(vocab: dict[str, int], tokens: Iterable[str]) -> dict[str, int]:
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
    vocab = append_tokens(vocab, ("<|endoftext|>", *specials, *(named or {}).values()))
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
    vocab = append_tokens(vocab, ("<image>", "<pad>"))
    tokenizer = LlamaTokenizer(
        vocab=vocab, merges=merges, pad_token="<pad>", add_bos_token=True,
        extra_special_tokens={"image_token": "<image>"},
    )
    return tokenizer


def train_gemma_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``GemmaTokenizer`` (BPE over ▁-joined text with byte fallback) plus Gemma 3's turn and image tokens."""
    from tokenizers import pre_tokenizers
    from transformers import GemmaTokenizer

    # Gemma keeps spaces as ▁ glued to the next word and adds none before the first word; learning from
    # each text with and without a leading space gives both forms of a word, as the real vocabulary has.
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True),
        pre_tokenizers.Punctuation(behavior="isolated"),
    ])
    texts = [*texts, *TEMPLATE_WORDS]
    counts = word_counts([*texts, *(f" {t}" for t in texts)], pre_tokenizer=pre_tokenizer)
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    vocab, merges = learn_bpe(counts, vocab_size + 263, [*GEMMA_CONTROL, *byte_tokens], alphabet=["\n"])
    vocab = append_tokens(vocab, GEMMA_NAMED.values())
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, extra_special_tokens=GEMMA_NAMED)
    tokenizer.add_tokens(["<start_of_turn>", "<end_of_turn>"], special_tokens=True)
    return tokenizer


def train_smollm_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``GPT2Tokenizer`` (byte-level BPE) with SmolVLM's control and image-layout tokens."""
    from tokenizers import pre_tokenizers
    from transformers import GPT2Tokenizer

    counts = word_counts([*texts, *TEMPLATE_WORDS, "User: Assistant:"],
                         pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False))
    vocab, merges = learn_bpe(counts, vocab_size, SMOLVLM_CONTROL, pre_tokenizers.ByteLevel.alphabet())
    vocab = append_tokens(vocab, SMOLVLM_IMAGE)
    return GPT2Tokenizer(vocab=vocab, merges=merges, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                         pad_token="<|im_end|>", unk_token="<|endoftext|>", extra_special_tokens=list(SMOLVLM_IMAGE))
