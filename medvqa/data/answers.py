"""Answer vocabulary stage: train split → ``results/data/{dataset}/answers.json``.

answers.json = {"answers": [...], "answer_type": {answer: "closed"|"open"},
"counts": {answer: n}, "normalisation": "<rule>", "coverage": {split: fraction}}.
The classifier families predict the index of an answer in ``answers``; answers are sorted
by training frequency (ties alphabetically) so index 0 is the majority answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from medvqa.io import write_json

NORMALISATION = "lower case, surrounding whitespace stripped, inner whitespace collapsed, trailing .,;:!? removed"
_SPACES = re.compile(r"\s+")


def normalise_answer(text: str) -> str:
    """The answer key used for the vocabulary and for matching labels (see NORMALISATION)."""
    return _SPACES.sub(" ", str(text).strip().lower()).rstrip(".,;:!? ").strip()


def build_vocabulary(train: pd.DataFrame, others: Mapping[str, pd.DataFrame] | None = None) -> dict:
    """Vocabulary of normalised train answers, plus the share of each other split it covers."""
    answers = train["answer"].map(normalise_answer)
    counts = Counter(answers)
    ordered = sorted(counts, key=lambda a: (-counts[a], a))
    # An answer seen as both closed and open (e.g. "no" to an open question) counts as
    # closed when most of its occurrences are; evaluation uses the row's own type anyway.
    type_votes = pd.crosstab(answers, train["answer_type"])
    answer_type = {
        a: ("closed" if type_votes.loc[a].get("closed", 0) >= type_votes.loc[a].get("open", 0) else "open")
        for a in ordered
    }
    known = set(ordered)
    coverage = {
        split: float(df["answer"].map(normalise_answer).isin(known).mean()) if len(df) else float("nan")
        for split, df in (others or {}).items()
    }
    return {
        "answers": ordered,
        "answer_type": answer_type,
        "counts": {a: counts[a] for a in ordered},
        "normalisation": NORMALISATION,
        "coverage": coverage,
    }


def write_answers(train_path: str | Path, other_paths: Sequence[str | Path], out_path: str | Path) -> dict:
    train = pd.read_parquet(train_path, columns=["answer", "answer_type"])
    others = {Path(p).stem: pd.read_parquet(p, columns=["answer"]) for p in other_paths}
    vocab = build_vocabulary(train, others)
    write_json(vocab, out_path)
    return vocab

