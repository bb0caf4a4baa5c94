"""Pre-tokenisation stage: results/data/{dataset}/{split}.parquet →
``tokens/{tokenizer}.{split}.parquet`` (+ ``tokens/{tokenizer}.vocab.json`` for kind ``words``).

VQA output columns:     question_id (str), input_ids (list<int32>, the question),
                        answer_ids (list<int32>, the answer, no special tokens)
Caption output columns: image_id (str), caption_ids (list<int32>)
Ids are unpadded and truncated to ``max_length``; collators pad per batch. Both the vocabulary
and the tokens read the split's text columns in record batches (``BATCH_ROWS``), never the images.

Kinds: ``words`` — lower-cased word/punctuation tokens over a vocabulary built from the train
split ({"tokens": [...], "pad_id": 0, "unk_id": 1}); ``hf`` — any Hugging Face tokenizer,
loaded with ``AutoTokenizer.from_pretrained(path)`` (a hub id or a save_pretrained directory).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medvqa.data.schema import split_task
from medvqa.io import atomic_path, read_batches, read_json, write_json
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
BATCH_ROWS = 8192  # text rows tokenised (and written as one row group) at a time
_WORD = re.compile(r"[^\W_]+|[^\w\s]")


@dataclasses.dataclass(frozen=True)
class TokenizerSpec(Spec):
    kind: str  # words (a vocabulary built from the train split) | hf (a Hugging Face tokenizer)
    max_length: int = 32  # token ids kept per text (truncated; collators pad per batch)
    min_freq: int = 1  # words: a train word enters the vocabulary from this many occurrences
    path: str | None = None  # hf: hub id or save_pretrained directory of the tokenizer

    def validate(self, where: str) -> None:
        check_choice(where, "kind", self.kind, ("words", "hf"))
        check_range(where, "max_length", self.max_length, 1, 8192)
        check_range(where, "min_freq", self.min_freq, 1)
        if self.kind == "hf" and not self.path:
            raise ConfigError(f"{where}: kind 'hf' needs 'path' (a hub id or a save_pretrained directory)")


def split_words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def build_word_vocab(train_path: str | Path, spec: TokenizerSpec, out_path: str | Path) -> dict:
    """Vocabulary of the train split's question and answer (or caption) words."""
    columns = ["question", "answer"] if split_task(train_path) == "vqa" else ["caption"]
    counts = Counter()
    for batch in read_batches(train_path, columns, BATCH_ROWS):
        counts.update(word for col in columns for text in batch.column(col).to_pylist() for word in split_words(text))
    words = sorted((w for w, n in counts.items() if n >= spec.min_freq), key=lambda w: (-counts[w], w))
    vocab = {"tokens": [PAD, UNK, *words], "pad_id": 0, "unk_id": 1}
    write_json(vocab, out_path)
    log.info("word vocabulary: %d tokens from %s", len(vocab["tokens"]), train_path)
    return vocab


def word_encoder(vocab_path: str | Path, max_length: int) -> Callable[[Sequence[str], bool], list[list[int]]]:
    vocab = read_json(vocab_path)
    index = {w: i for i, w in enumerate(vocab["tokens"])}
    unk = vocab["unk_id"]

    def encode(texts: Sequence[str], special_tokens: bool = True) -> list[list[int]]:
        return [[index.get(w, unk) for w in split_words(t)][:max_length] for t in texts]

    return encode


def hf_encoder(path: str, max_length: int) -> Callable[[Sequence[str], bool], list[list[int]]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(texts: Sequence[str], special_tokens: bool = True) -> list[list[int]]:
        out = tokenizer(list(texts), add_special_tokens=special_tokens, truncation=True, max_length=max_length)
        return out["input_ids"]

    return encode


def tokenize_split(
    spec: TokenizerSpec, split_path: str | Path, out_path: str | Path, vocab_path: str | Path | None = None
) -> int:
    """Tokenise one split's questions and answers (or captions) into a parquet of id lists."""
    if spec.kind == "words":
        if vocab_path is None:
            raise ValueError("tokenizer kind 'words' needs the vocabulary file")
        encode = word_encoder(vocab_path, spec.max_length)
    else:
        encode = hf_encoder(spec.path, spec.max_length)
    ids = pa.list_(pa.int32())
    if split_task(split_path) == "vqa":
        key, fields = "question_id", {"input_ids": ("question", True), "answer_ids": ("answer", False)}
    else:
        key, fields = "image_id", {"caption_ids": ("caption", False)}
    out_schema = pa.schema([(key, pa.large_string()), *((name, ids) for name in fields)])
    n = 0
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, out_schema) as writer:
        columns = [key, *(text for text, _ in fields.values())]
        for batch in read_batches(split_path, columns, BATCH_ROWS):
            rows = batch.to_pandas()
            table = {key: pa.array(rows[key].astype(str), pa.large_string())}
            for name, (text, special) in fields.items():
                table[name] = pa.array(encode(rows[text].tolist(), special), ids)
            writer.write_table(pa.table(table, schema=out_schema))
            n += len(rows)
    log.info("tokenised %d rows of %s with %s", n, split_path, spec.kind)
    return n
