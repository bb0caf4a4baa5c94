"""Answer normalisation and tokenisation shared by every evaluation protocol.

The scoring stage (``medvqa.evaluate.score``) compares predictions with references only
after ``normalise``; the rule is written into every metrics JSON as ``NORMALISATION`` so
a reader knows exactly what "exact match" meant. This is stricter than the vocabulary
key of ``medvqa.data.answers.normalise_answer`` (which only folds case and trailing
punctuation): evaluation also drops articles and inner punctuation, as the SQuAD / VQA
evaluation scripts do, so "The left lung." and "left-lung" both become "left lung".
"""

from __future__ import annotations

import re
import unicodedata

NORMALISATION = (
    "Unicode NFKC, case-folded; a '.' between two digits is kept (2.5) and a ',' between "
    "two digits is dropped (1,000 -> 1000); every other Unicode punctuation or symbol "
    "character becomes a space; the articles 'a', 'an', 'the' are removed as whole words; "
    "whitespace is collapsed and stripped. Tokens are the whitespace-separated words of "
    "the normalised text."
)
CAPTION_TOKENISATION = (
    "lower-cased, split with the regex \\w+|[^\\w\\s]+ (nltk wordpunct_tokenize), then "
    "punctuation-only tokens dropped; unlike the COCO caption PTB tokeniser this splits hyphenated "
    "words, decimals and a/b (well-known -> well known); the coco protocol uses the PTB tokeniser"
)

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_DIGIT_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SPACES = re.compile(r"\s+")
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")
# A placeholder that survives the punctuation pass; private-use code point, never in data.
_POINT = "\ue000"


def _strip_punctuation(text: str) -> str:
    # Unicode categories P* (punctuation) and S* (symbols) cover ASCII and e.g. '，' or '±'.
    return "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)


def normalise(text: object) -> str:
    """Normalised form of one answer (see NORMALISATION); None/NaN become ''."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = _DIGIT_COMMA.sub("", text)
    text = _DIGIT_POINT.sub(_POINT, text)
    text = _strip_punctuation(text).replace(_POINT, ".")
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def answer_tokens(text: object) -> list[str]:
    """Words of the normalised answer: the unit of token F1, token recall and VQA BLEU."""
    return normalise(text).split()


def caption_tokens(text: object) -> list[str]:
    """Caption tokens for corpus BLEU (see CAPTION_TOKENISATION)."""
    if text is None or (isinstance(text, float) and text != text):
        return []
    lowered = unicodedata.normalize("NFKC", str(text)).lower()
    return [tok for tok in _WORDPUNCT.findall(lowered) if any(ch.isalnum() for ch in tok)]
