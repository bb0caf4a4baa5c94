"""COCO caption tokenisation: Stanford PTBTokenizer as pycocoevalcap calls it, or a Python copy.

Used by the caption protocols of the scoring stage (``medvqa.evaluate.captions``); reads
and writes no files except a temporary input for Java. The COCO caption evaluation
(tylin/coco-caption ``pycocoevalcap/tokenizer/ptbtokenizer.py``) runs
``java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer -preserveLines
-lowerCase`` on one caption per line and then drops the tokens in its ``PUNCTUATIONS`` list.
``ptb_tokenize`` does exactly that with the jar shipped in the pycocoevalcap wheel when
``java`` is on PATH, and otherwise (or on request) uses ``python_ptb_tokens``, a rule-based
re-implementation of the parts of the PTB lexer that survive the punctuation filter. Which
one ran is returned, so every metrics JSON states it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

TOKENIZERS = ("auto", "java", "python")
# pycocoevalcap/tokenizer/ptbtokenizer.py, PUNCTUATIONS (tylin/coco-caption, same list in
# pycocoevalcap 1.2). Matched after -lowerCase, so "-LRB-" never matches "-lrb-": the COCO
# evaluation keeps bracket tokens, and so do we.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
JAVA_RULE = (
    "Stanford PTBTokenizer (stanford-corenlp-3.4.1.jar from the pycocoevalcap wheel) run by java with "
    "-preserveLines -lowerCase, one caption per line (line breaks inside a caption become spaces), "
    "then pycocoevalcap's PUNCTUATIONS tokens dropped; bracket tokens (-lrb-, -rrb-, -lsb-, ...) stay, "
    "as in the COCO evaluation, because the filter is applied after lower-casing"
)
PYTHON_RULE = (
    "medvqa's Python re-implementation of that PTBTokenizer call (java not used): lower-cased; "
    "hyphenated words, decimals, 1,000-style numbers, a/b slashes, acronyms (e.g., u.s.) and "
    "known abbreviations (dr., vs., etc., ...) stay one token; contractions split (is n't, 's); "
    "brackets become -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-; other punctuation and symbols are "
    "separate tokens; then pycocoevalcap's PUNCTUATIONS tokens dropped. Checked equal to the Java "
    "tokenizer on a test fixture, not on every possible text"
)
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
# Abbreviations the 3.4.1 lexer keeps with their period (probed with the jar; case-insensitive).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr inc co corp ltd al vs etc cf gen gov rep sen rev col mt ave rd "
    "jan feb mar apr aug sep sept oct nov dec".split()
)
_BEFORE_NUMBER = frozenset("fig figs no nos pp art ext tel".split())  # kept with '.' before a digit
_DASHES = "\u2012\u2013\u2014\u2015"
_CONTRACTION = re.compile(r"(?i)^(.+?)(n't|'s|'m|'re|'ll|'d|'ve)$")
# "§" in _WORD: a letter or digit, or a combining mark (Java keeps a decomposed "cafe\u0301"
# one word; Python's \w does not match the mark).
_W = "(?:[^\\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])"
_WORD = re.compile(
    r"""(?x)
    https?://\S+                                # URLs stay whole
    | (?:[^\W\d_]\.){2,}                          # acronyms: e.g. u.s. p.m.
    | \d+(?:[.,]\d+)+(?:-§+)*                      # 3.5  1,000  0.8-inch (2.5x10 -> 2.5 x10)
    | §+(?:\.(?=[^\W\d_])§+)+                      # joined by '.' before a letter: lesion.The
    | §+(?:(?:[-/']|_+)§+)*                        # joined by - / ' or inner underscores
    | \.\d+|\.\.\.|--+|``|''|[!?]+|\#+|\*+         # v2.0 -> v2 .0; runs of ! ? # * are one token
    | [^\w\s]|_
    """.replace("§", _W)
)


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (the PTB jar and METEOR need it)."""
    return shutil.which("java") is not None


def _jar() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer  # only the caption protocols need the package

    return Path(ptbtokenizer.__file__).with_name("stanford-corenlp-3.4.1.jar")


def _one_line(text: object) -> str:
    # Any line break would shift every later caption by a line; pycocoevalcap only handles "\n".
    text = "" if text is None or (isinstance(text, float) and text != text) else str(text)
    return re.sub(r"[\r\n\v\f\u0085\u2028\u2029]", " ", text)


def java_ptb_tokens(captions: Sequence[object]) -> list[str]:
    """Space-joined tokens of each caption from the Stanford PTBTokenizer jar (see JAVA_RULE)."""
    lines = [_one_line(c) for c in captions]
    todo = [i for i, line in enumerate(lines) if line.strip()]
    out = [""] * len(lines)
    if not todo:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "captions.txt"
        path.write_text("\n".join(lines[i] for i in todo) + "\n", encoding="utf-8")
        cmd = ["java", "-cp", str(_jar()), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", "-encoding", "utf-8", str(path)]
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        result = subprocess.run(cmd, capture_output=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"PTBTokenizer failed (exit {result.returncode}): {result.stderr.decode()[-500:]}")
    tokens = result.stdout.decode("utf-8").split("\n")[: len(todo)]
    if len(tokens) != len(todo):
        raise RuntimeError(f"PTBTokenizer returned {len(tokens)} lines for {len(todo)} captions")
    for i, line in zip(todo, tokens, strict=True):
        out[i] = " ".join(w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS)
    return out


def _keeps_period(word: str, next_chunk: str) -> bool:
    """Whether the 3.4.1 lexer keeps a word-final '.' on ``word`` (else it is its own token)."""
    lower = word.lower()
    return (
        len(word) == 1 and word.isalpha()
        or ("." in word and all(p.isalpha() and len(p) <= 2 for p in word.split(".")))  # ph.d., not 3.10
        or lower in _ABBREVIATIONS
        or (lower in _BEFORE_NUMBER and next_chunk[:1].isdigit())
    )


def _piece_tokens(piece: str, first: bool) -> list[str]:
    if piece.lower() == "cannot":
        return [piece[:3], piece[3:]]
    match = _CONTRACTION.match(piece)
    if match and match.group(1)[-1:].isalpha():
        return [match.group(1), match.group(2)]
    if piece in _BRACKETS:
        return [_BRACKETS[piece]]
    if piece == '"':
        return ["``" if first else "''"]
    return ["--"] if piece in _DASHES else [piece]


def _chunk_tokens(chunk: str, next_chunk: str) -> list[str]:
    """PTB tokens of one whitespace-free chunk of text; ``next_chunk`` decides 'No. 5'."""
    signed = re.match(r"[-+]\d+(?:[.,]\d+)*", chunk)
    head = [signed.group()] if signed else []
    rest = chunk[signed.end():] if signed else chunk
    pieces = [m.group() for m in _WORD.finditer(rest)]
    tokens = list(head)
    for i, piece in enumerate(pieces):
        word = tokens[-1] if tokens else ""
        if piece == "." and i == len(pieces) - 1 and word[-1:].isalnum() and i > 0:
            if _keeps_period(word, next_chunk):
                tokens[-1] = word + "."
                continue
        tokens.extend(_piece_tokens(piece, not tokens))
    return tokens


def python_ptb_tokens(caption: object) -> str:
    """Space-joined tokens of one caption by the Python re-implementation (see PYTHON_RULE)."""
    text = _one_line(caption)
    chunks = text.split()
    tokens: list[str] = []
    for k, chunk in enumerate(chunks):
        tokens.extend(_chunk_tokens(chunk, chunks[k + 1] if k + 1 < len(chunks) else ""))
    return " ".join(t.lower() for t in tokens if t.lower() not in PUNCTUATIONS and t not in PUNCTUATIONS)


def ptb_tokenize(captions: Sequence[object], tokenizer: str = "auto") -> tuple[list[str], str]:
    """(space-joined PTB tokens per caption, the rule text of the tokenizer that ran).

    ``tokenizer``: "java" (the jar; error without java), "python" (the re-implementation) or
    "auto" (java when on PATH, else python).
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown PTB tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    use_java = tokenizer == "java" or (tokenizer == "auto" and java_available())
    if use_java:
        if not java_available():
            raise RuntimeError(
                "ptb_tokenizer 'java' needs a java executable on PATH (apt-get install default-jre-headless)"
            )
        return java_ptb_tokens(captions), JAVA_RULE
    return [python_ptb_tokens(c) for c in captions], PYTHON_RULE
