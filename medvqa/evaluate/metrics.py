"""Per-item answer and caption scores under the published protocols, and corpus BLEU.

Used by the scoring stage (``medvqa.evaluate.score``). Every function takes raw strings
(or token lists) and returns plain numpy arrays, so the stage can bootstrap them:

- ``exact_match``     1 if normalised prediction == normalised reference.
- ``contains_tokens`` / ``token_recall`` / ``token_f1``: token-level building blocks of the
                      protocols in ``medvqa.evaluate.protocols`` (the registry of named
                      VQA protocols, their rules text and references).
- BLEU-1..4           nltk; ``sentence_bleu_scores`` per item, ``corpus_bleu`` per split,
                      ``bleu_statistics`` / ``bleu_from_statistics`` for bootstrap CIs.
- ROUGE-L             rouge-score, F-measure per caption.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from medvqa.evaluate.normalise import normalise


def _nltk_bleu():
    # nltk takes ~2 s to import; the workflow's start-up config check must not pay for it.
    from nltk.translate import bleu_score

    return bleu_score

BLEU_WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3, 1 / 3, 1 / 3), 4: (0.25, 0.25, 0.25, 0.25)}
SMOOTHING_NAMES = ("none", *(f"method{i}" for i in range(1, 8)))


def exact_match(predictions: Sequence[object], references: Sequence[object]) -> np.ndarray:
    """(n,) float array of 0/1: normalised prediction == normalised reference."""
    pairs = zip(predictions, references, strict=True)
    return np.array([normalise(p) == normalise(r) for p, r in pairs], dtype=float)


def contains_tokens(prediction: Sequence[str], reference: Sequence[str]) -> bool:
    """True if ``reference`` occurs as a contiguous run of whole tokens in ``prediction``."""
    if not reference:
        return not prediction
    width = len(reference)
    return any(list(prediction[i : i + width]) == list(reference) for i in range(len(prediction) - width + 1))


def token_recall(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """Share of reference tokens (multiset) found in the prediction; 1.0 iff both empty."""
    if not reference:
        return float(not prediction)
    common = Counter(prediction) & Counter(reference)
    return sum(common.values()) / len(reference)


def token_f1(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """SQuAD token F1 of two token lists; 1.0 when both are empty, 0.0 when one is."""
    if not prediction or not reference:
        return float(not prediction and not reference)
    overlap = sum((Counter(prediction) & Counter(reference)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction)
    recall = overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


def smoothing_function(name: str):
    """nltk ``SmoothingFunction`` method by name; None for 'none' (nltk's method0)."""
    if name not in SMOOTHING_NAMES:
        raise ValueError(f"unknown BLEU smoothing {name!r}; choose one of {', '.join(SMOOTHING_NAMES)}")
    return None if name == "none" else getattr(_nltk_bleu().SmoothingFunction(), name)


def corpus_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_order: int = 4,
    smoothing: str = "none",
) -> dict[str, float]:
    """nltk corpus BLEU-1..max_order with uniform weights: {"bleu_1": ..., ...}.

    ``hypotheses`` holds one token list per item, ``references`` a list of reference token
    lists per item. An empty corpus gives NaN. nltk's zero-count warnings are silenced
    because the smoothing in use is written into the metrics JSON instead.
    """
    names = [f"bleu_{k}" for k in range(1, max_order + 1)]
    if len(hypotheses) == 0:
        return dict.fromkeys(names, math.nan)
    weights = [BLEU_WEIGHTS[k] for k in range(1, max_order + 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = _nltk_bleu().corpus_bleu(
            [list(map(list, refs)) for refs in references],
            [list(h) for h in hypotheses],
            weights=weights,
            smoothing_function=smoothing_function(smoothing),
            auto_reweigh=False,
        )
    scores = scores if isinstance(scores, list) else [scores]
    return {name: float(score) for name, score in zip(names, scores)}


def sentence_bleu_scores(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_order: int = 4,
    smoothing: str = "method1",
) -> np.ndarray:
    """(n, max_order) nltk sentence BLEU-1..max_order of each item."""
    weights = [BLEU_WEIGHTS[k] for k in range(1, max_order + 1)]
    smooth = smoothing_function(smoothing)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for hyp, refs in zip(hypotheses, references, strict=True):
            row = _nltk_bleu().sentence_bleu(
                [list(r) for r in refs], list(hyp), weights=weights, smoothing_function=smooth,
                auto_reweigh=False,
            )
            rows.append(row if isinstance(row, list) else [row])
    return np.array(rows, dtype=float).reshape(len(rows), max_order)


def bleu_statistics(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], max_order: int = 4
) -> np.ndarray:
    """(n, 2*max_order + 2) additive BLEU counts per item, as nltk corpus_bleu sums them.

    Columns: clipped n-gram matches for n = 1..max_order, hypothesis n-gram counts
    (at least 1, as nltk counts them), hypothesis length, closest reference length.
    """
    rows = []
    for hyp, refs in zip(hypotheses, references, strict=True):
        matches, totals = [], []
        for n in range(1, max_order + 1):
            p = _nltk_bleu().modified_precision([list(r) for r in refs], list(hyp), n)
            matches.append(p.numerator)
            totals.append(p.denominator)
        rows.append([*matches, *totals, len(hyp), _nltk_bleu().closest_ref_length(refs, len(hyp))])
    return np.array(rows, dtype=float).reshape(len(rows), 2 * max_order + 2)


def bleu_from_statistics(sums: np.ndarray, order: int, max_order: int = 4) -> np.ndarray:
    """Unsmoothed corpus BLEU-``order`` from summed ``bleu_statistics`` rows (rows, 2*max_order+2).

    Returns (rows,). Equals nltk corpus_bleu without smoothing (to the ~1e-77 that nltk's
    method0 leaves when some n-gram precision is zero); used for bootstrap CIs.
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    matches = sums[:, :order]
    totals = sums[:, max_order : max_order + order]
    hyp_len, ref_len = sums[:, 2 * max_order], sums[:, 2 * max_order + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_precision = np.log(matches / totals).mean(axis=1)
        brevity = np.where(hyp_len > ref_len, 1.0, np.exp(1.0 - ref_len / hyp_len))
    score = brevity * np.exp(log_precision)
    return np.where((matches > 0).all(axis=1) & (hyp_len > 0), score, 0.0)


def rouge_l_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], use_stemmer: bool = False
) -> np.ndarray:
    """(n,) ROUGE-L F-measure per caption (rouge-score; best over an item's references)."""
    from rouge_score import rouge_scorer  # imported here: only the caption stage needs it

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    pairs = zip(hypotheses, references, strict=True)
    scores = [scorer.score_multi(list(refs), str(hyp))["rougeL"].fmeasure for hyp, refs in pairs]
    return np.array(scores, dtype=float)
