"""Deterministic BPE / WordPiece vocabularies for the tiny offline checkpoints.

The ``tokenizers`` trainers (BpeTrainer, WordPieceTrainer) break ties between pairs of equal
count in hash-map order (huggingface/tokenizers#1794), so two cold builds of one checkpoint
from the same texts got different vocabularies, hence different weights and numbers. This is
a small count-based BPE learner with an explicit order instead:

* words come from the tokenizer's own normaliser and pre-tokeniser (``tokenizers`` objects,
  which are deterministic), counted over all texts;
* the vocabulary is the special tokens (in the order given), then the alphabet sorted by code
  point, then one token per merge in the order learnt;
* each step merges the most frequent adjacent pair; among pairs of equal count the
  lexicographically smallest (left, right) wins. Learning stops at ``vocab_size`` tokens or
  when no pair is left.

``prefix`` marks non-initial pieces (WordPiece's ``##``), ``suffix`` word-final ones (CLIP's
``</w>``), as the ``tokenizers`` trainers' ``continuing_subword_prefix`` / ``end_of_word_suffix``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

Pair = tuple[str, str]


def word_counts(texts: Iterable[str], normalizer=None, pre_tokenizer=None) -> Counter[str]:
    """Pre-tokenised words of ``texts`` and how often each occurs (the trainers' input)."""
    counts: Counter[str] = Counter()
    for text in texts:
        text = normalizer.normalize_str(text) if normalizer is not None else text
        words = pre_tokenizer.pre_tokenize_str(text) if pre_tokenizer is not None else [(w, None) for w in text.split()]
        counts.update(word for word, _ in words if word)
    return counts


def _pairs(pieces: Sequence[str]) -> Counter[Pair]:
    return Counter(zip(pieces, pieces[1:]))


def _merge(pieces: list[str], pair: Pair, new: str) -> list[str]:
    out, i = [], 0
    while i < len(pieces):
        if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return out


def _split_words(counts: Mapping[str, int], prefix: str, suffix: str) -> dict[str, list[str]]:
    words = {}
    for word in sorted(counts):
        pieces = [char if i == 0 else prefix + char for i, char in enumerate(word)]
        pieces[-1] += suffix
        words[word] = pieces
    return words


def learn_bpe(
    counts: Mapping[str, int], vocab_size: int, specials: Sequence[str] = (), alphabet: Iterable[str] = (),
    prefix: str = "", suffix: str = "",
) -> tuple[dict[str, int], list[Pair]]:
    """(token → id, merges in order) learnt from word ``counts``; see the module docstring."""
    words = _split_words(counts, prefix, suffix)
    vocab: dict[str, int] = {}
    for token in specials:
        vocab.setdefault(token, len(vocab))
    for symbol in sorted({*alphabet, *(p for pieces in words.values() for p in pieces)}):
        vocab.setdefault(symbol, len(vocab))
    pair_counts: Counter[Pair] = Counter()
    holders: dict[Pair, set[str]] = defaultdict(set)
    for word, pieces in words.items():
        for pair, n in _pairs(pieces).items():
            pair_counts[pair] += n * counts[word]
            holders[pair].add(word)
    merges: list[Pair] = []
    while len(vocab) < vocab_size and pair_counts:
        # Explicit tie-break: highest count first, then the smallest pair as strings.
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        new = best[0] + best[1][len(prefix):]
        merges.append(best)
        vocab.setdefault(new, len(vocab))
        for word in sorted(holders.pop(best)):
            old = words[word]
            merged = _merge(old, best, new)
            if merged == old:
                continue
            for pair, n in _pairs(old).items():
                pair_counts[pair] -= n * counts[word]
                if pair_counts[pair] <= 0:
                    del pair_counts[pair]
            for pair, n in _pairs(merged).items():
                pair_counts[pair] += n * counts[word]
                holders[pair].add(word)
            words[word] = merged
        pair_counts.pop(best, None)
    return vocab, merges


def learn_wordpiece(counts: Mapping[str, int], vocab_size: int, specials: Sequence[str] = ()) -> dict[str, int]:
    """A WordPiece vocabulary as ``tokenizers``' WordPieceTrainer builds one: a BPE whose
    non-initial pieces carry ``##``, keeping the vocabulary (WordPiece has no merges)."""
    vocab, _ = learn_bpe(counts, vocab_size, specials, prefix="##")
    return vocab
