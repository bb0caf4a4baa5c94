"""Per-question scores of the published VQA evaluation scripts, re-implemented quirk for quirk.

Used by the protocol registry (``medvqa.evaluate.protocols``). Each function takes one
prediction and one reference answer (raw strings) and returns what the reference script
computes for that question before averaging. The comments cite the reference line whose
behaviour each step reproduces; ``tests/evaluate/test_evaluate_protocols.py`` pins them on
crafted cases.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

from medvqa.evaluate.vqa_eval_text import vqa_eval_normalise, word_counts


def llava_med_inputs(prediction: str, reference: str) -> tuple[str, str]:
    """(prediction, reference) as run_eval.py holds them: lower-cased, then normalize_word."""
    return vqa_eval_normalise(prediction.lower()), vqa_eval_normalise(reference.lower())


def llava_med_closed_hit(prediction: str, reference: str) -> float:
    """run_eval.py (ad758b6) closed branch: 'yes' or 'no' occurs in the prediction AND the
    reference occurs in it, both as raw substrings (so 'no' inside 'normal' counts)."""
    pred, ref = llava_med_inputs(prediction, reference)
    return float(("yes" in pred or "no" in pred) and ref in pred)


def llava_med_says_yes_or_no(prediction: str) -> bool:
    """run_eval.py's first closed test: 'yes' or 'no' occurs (as a substring) in the prediction."""
    pred = vqa_eval_normalise(prediction.lower())
    return "yes" in pred or "no" in pred


def llava_med_f1(prediction: str, reference: str) -> tuple[float, float, float]:
    """(f1, precision, recall) of evaluate_metrics.calculate_f1score on run_eval's inputs.

    The reference normalises again inside (a second normalize_word), counts each shared word
    with its multiplicity in the PREDICTION as true positives, each prediction-only word's
    count as false positives and each reference-only word's count as false negatives; an
    empty side or no shared word gives (0, 0, 0).
    """
    pred, ref = (vqa_eval_normalise(t) for t in llava_med_inputs(prediction, reference))
    cand, refw = word_counts(pred), word_counts(ref)
    tp = sum(n for w, n in cand.items() if w in refw)
    fp = sum(n for w, n in cand.items() if w not in refw)
    fn = sum(n for w, n in refw.items() if w not in cand)
    if not cand or not refw or tp == 0:
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall), precision, recall


def llava_med_exact(prediction: str, reference: str) -> float:
    """evaluate_metrics.calculate_exactmatch: distinct reference words found in the
    prediction divided by the prediction's word count (0 for an empty prediction)."""
    pred, ref = (vqa_eval_normalise(t) for t in llava_med_inputs(prediction, reference))
    cand, refw = word_counts(pred), word_counts(ref)
    total = sum(cand.values())
    return sum(1 for w in refw if w in cand) / total if total else 0.0


def llava_med_bleu(prediction: str, reference: str) -> dict[str, float]:
    """run_eval.py's four nltk sentence_bleu calls (no smoothing) on whitespace words:
    default weights (BLEU-4) and single-order weights (1,0,0,0), (0,1,0,0), (0,0,1,0)."""
    from nltk.translate.bleu_score import sentence_bleu  # slow import, scoring stage only

    pred, ref = llava_med_inputs(prediction, reference)
    hyp, refs = pred.lower().split(), [ref.lower().split()]
    weights = {"bleu": (0.25, 0.25, 0.25, 0.25), "bleu_1": (1, 0, 0, 0), "bleu_2": (0, 1, 0, 0),
               "bleu_3": (0, 0, 1, 0)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference silences nltk's zero-count warnings too
        return {name: float(sentence_bleu(refs, hyp, weights=w)) for name, w in weights.items()}


def llava_med_candidates(raw: object, where: str) -> tuple[str, ...]:
    """The candidate answers of a LLaVA-Med candidate file, as ``calculate_appearance_with_normalization``
    reads them: ``json.load(file)['0']`` (a bare list is taken too), an int made a string.

    The reference crashes on anything else (an empty list in ``argmax``, a float or null in
    ``normalize_word``); here a ValueError names the file and the entry instead."""
    answers = raw.get("0") if isinstance(raw, dict) else raw
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{where}: a LLaVA-Med candidate file holds a non-empty list under key \"0\"")
    bad = next((i for i, a in enumerate(answers) if not isinstance(a, (str, int))), None)
    if bad is not None:
        raise ValueError(f"{where}: candidate {bad} is {answers[bad]!r}; candidates are strings or integers")
    return tuple(str(a) for a in answers)


def llava_med_open_hit(prediction: str, reference: str, candidates: Sequence[str]) -> float:
    """run_eval.py's 'open accuracy' for one open question: evaluate_metrics.
    calculate_appearance_with_normalization(pred, gt, candidate) on run_eval's inputs.

    Each normalised candidate is scored by similarity_candidate_prediction: the number of
    DISTINCT prediction words found among its words, divided by its number of distinct words;
    the first best candidate (``argmax`` = ``lst.index(max(lst))``) is the answer, a hit iff it
    equals the (twice normalised) reference. So an empty prediction picks the first candidate."""
    pred, ref = (vqa_eval_normalise(t) for t in llava_med_inputs(prediction, reference))
    words = word_counts(pred)
    best, best_similarity = "", -1.0
    for candidate in candidates:
        answer, candidate_words = _normalised_candidate(candidate)
        found = sum(1 for w in words if w in candidate_words)
        similarity = found / len(candidate_words) if candidate_words else 0.0
        if similarity > best_similarity:  # strictly greater: the first maximum wins
            best, best_similarity = answer, similarity
    return float(best == ref)


@functools.lru_cache(maxsize=65536)
def _normalised_candidate(candidate: str) -> tuple[str, frozenset[str]]:
    # Every open question scans every candidate: normalise each candidate once.
    answer = vqa_eval_normalise(candidate)
    return answer, frozenset(word_counts(answer))


def multimedeval_inputs(prediction: str, reference: str) -> tuple[str, str]:
    """task_families.VQA.evaluate: clean_str(answer), clean_str(answer.lower().strip())."""
    return vqa_eval_normalise(prediction.lower()), vqa_eval_normalise(reference.lower().strip())


def multimedeval_token_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """(f1, precision, recall) on word SETS; F1 divides by (p + r + 1e-8), empty sides give 0."""
    pred, ref = multimedeval_inputs(prediction, reference)
    ptoks, rtoks = set(pred.split()) - {""}, set(ref.split()) - {""}
    shared = len(ptoks & rtoks)
    precision = shared / len(ptoks) if ptoks else 0.0
    recall = shared / len(rtoks) if rtoks else 0.0
    return 2 * precision * recall / (precision + recall + 1e-8), precision, recall


def multimedeval_closed(reference: str) -> bool:
    """MultiMedEval treats a question as closed iff its cleaned reference is 'yes' or 'no'."""
    return multimedeval_inputs("", reference)[1] in ("yes", "no")


def multimedeval_hit(prediction: str, reference: str) -> float:
    """Closed (reference yes/no): recall >= 0.4 of the reference set, where a reference 'no'
    also accepts 'not'. Open: token recall >= 0.75."""
    pred, ref = multimedeval_inputs(prediction, reference)
    ptoks, rtoks = set(pred.split()) - {""}, set(ref.split()) - {""}
    if ref in ("yes", "no"):
        if rtoks == {"no"}:
            rtoks = rtoks | {"not"}
        return float(len(ptoks & rtoks) / len(rtoks) >= 0.4)
    return float(multimedeval_token_scores(prediction, reference)[2] >= 0.75)


def multimedeval_bleu1(prediction: str, reference: str) -> float:
    """torchmetrics BLEUScore(n_gram=1)([pred], [[ref]]) on whitespace words: clipped unigram
    precision times the brevity penalty, 0 when no unigram matches."""
    pred, ref = multimedeval_inputs(prediction, reference)
    hyp, refw = pred.split(), ref.split()
    ref_counts = word_counts(ref)
    matches = sum(min(n, ref_counts.get(w, 0)) for w, n in word_counts(pred).items())
    if matches == 0 or not hyp:
        return 0.0
    brevity = 1.0 if len(hyp) > len(refw) else math.exp(1.0 - len(refw) / len(hyp))
    return brevity * matches / len(hyp)
