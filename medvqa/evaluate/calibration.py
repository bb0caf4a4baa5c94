"""Top-label calibration: reliability bins, ECE, MCE, Brier score and overconfidence.

Used by the scoring stage (``medvqa.evaluate.score``) once per confidence source present
in a predictions parquet: ``confidence`` (classifier softmax, or a copy of one token-probability column),
``sampled_agreement`` (share of sampled answers equal to the prediction) and
``answer_prob`` / ``answer_prob_mean`` (product / mean of a generative answer's token probabilities;
``confidence_sources`` names each and drops duplicates). The reliability bins
are written to the metrics JSON too, so the figures stage can draw diagrams without
re-reading predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medvqa.evaluate.normalise import normalise

BINNING = (
    "{n_bins} equal-width bins on [0, 1], right-closed ((k-1)/{n_bins}, k/{n_bins}] with 0.0 in the "
    "first bin; a confidence within 1e-9 of an edge counts as on the edge (so 0.2 = 3/15 lies in "
    "(2/15, 3/15] whatever its float rounding). Matches torchmetrics away from edges; torchmetrics "
    "uses left-closed bins and puts 1.0 in a bin of its own"
)
METRICS = {
    "ece": "sum over bins of (bin count / n) * |bin accuracy - bin mean confidence| (top-label, L1)",
    "mce": "max over non-empty bins of |bin accuracy - bin mean confidence|",
    "brier": "mean of (confidence - correct)^2 on the top label",
    "mean_confidence_wrong": "mean confidence over wrongly answered questions (null when none is wrong)",
    "overconfidence_gap": "mean confidence - accuracy (positive = overconfident)",
}
# Tolerance for snapping confidence * n_bins onto an integer bin edge.
_EDGE_TOL = 1e-9


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """(n,) int bin of each confidence in [0, 1] under the BINNING rule."""
    scaled = np.asarray(confidence, dtype=np.float64) * n_bins
    nearest = np.round(scaled)
    scaled = np.where(np.abs(scaled - nearest) < _EDGE_TOL, nearest, scaled)
    return np.clip(np.ceil(scaled).astype(np.int64) - 1, 0, n_bins - 1)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin statistics of top-label confidence (n,) and 0/1 correctness (n,).

    Returns arrays of length n_bins: "lower", "upper" (edges), "count", "mean_confidence"
    and "accuracy" (both NaN for empty bins).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    idx = bin_index(confidence, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count,
        "mean_confidence": mean_conf,
        "accuracy": accuracy,
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE (L1); NaN for no items."""
    bins = reliability_bins(confidence, correct, n_bins)
    n = bins["count"].sum()
    if n == 0:
        return math.nan
    gap = np.nan_to_num(np.abs(bins["accuracy"] - bins["mean_confidence"]))
    return float(np.sum(bins["count"] / n * gap))


def maximum_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Top-label MCE (max gap over non-empty bins); NaN for no items."""
    bins = reliability_bins(confidence, correct, n_bins)
    filled = bins["count"] > 0
    if not filled.any():
        return math.nan
    return float(np.max(np.abs(bins["accuracy"][filled] - bins["mean_confidence"][filled])))


def calibration_report(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> dict:
    """All calibration numbers of one confidence source; rows with NaN confidence are dropped.

    ``confidence`` (n,) in [0, 1] or NaN, ``correct`` (n,) 0/1. Returns a JSON-ready dict:
    n, accuracy, mean_confidence, ece, mce, brier, mean_confidence_wrong,
    overconfidence_gap and "bins" (list of per-bin dicts).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    keep = ~np.isnan(confidence)
    if np.any((confidence[keep] < 0) | (confidence[keep] > 1)):
        raise ValueError("confidence values must lie in [0, 1]")
    conf, corr = confidence[keep], correct[keep]
    wrong = corr == 0
    mean_conf = float(conf.mean()) if conf.size else math.nan
    accuracy = float(corr.mean()) if corr.size else math.nan
    bins = reliability_bins(conf, corr, n_bins)
    return {
        "n": int(conf.size),
        "n_missing_confidence": int((~keep).sum()),
        "accuracy": accuracy,
        "mean_confidence": mean_conf,
        "ece": expected_calibration_error(conf, corr, n_bins),
        "mce": maximum_calibration_error(conf, corr, n_bins),
        "brier": float(np.mean((conf - corr) ** 2)) if conf.size else math.nan,
        "mean_confidence_wrong": float(conf[wrong].mean()) if wrong.any() else math.nan,
        "overconfidence_gap": mean_conf - accuracy,
        "bins": [
            {key: (int(bins[key][i]) if key == "count" else float(bins[key][i])) for key in bins}
            for i in range(n_bins)
        ],
    }


def sampled_agreement(
    predictions: Sequence[object], samples: Sequence[Sequence[object] | None]
) -> np.ndarray:
    """(n,) share of each row's sampled answers whose normalised form equals the prediction's.

    NaN where a row has no samples (None or empty list).
    """
    out = np.full(len(predictions), np.nan)
    for i, (pred, row) in enumerate(zip(predictions, samples, strict=True)):
        if row is None or len(row) == 0:
            continue
        target = normalise(pred)
        out[i] = sum(normalise(s) == target for s in row) / len(row)
    return out


SOFTMAX = "classifier softmax: the predictions' confidence column, probability of the chosen answer"
TOKEN_PRODUCT = "product of the generated answer's token probabilities (the answer_prob column)"
TOKEN_MEAN = "arithmetic mean of the generated answer's token probabilities (answer_prob_mean column)"
UNMATCHED = "the predictions' confidence column (equal to neither token-probability column)"
AGREEMENT = "sampled-answer agreement: share of the sampled answers (samples column) equal to the normalised prediction"
CORRECTNESS = "a question counts as correct when protocol {protocol!r} gives it full marks (score 1)"


def _column(frame, column: str) -> np.ndarray | str:
    if column not in frame:
        return f"no {column} column in the predictions"
    values = frame[column].to_numpy(dtype=np.float64)
    return values if len(values) == 0 or (~np.isnan(values)).any() else f"{column} is null for every row"


def _same(a: np.ndarray | str, b: np.ndarray | str) -> bool:
    return not isinstance(a, str) and not isinstance(b, str) and np.allclose(a, b, equal_nan=True)


def confidence_sources(frame) -> dict[str, tuple[np.ndarray | str, str]]:
    """{source: (confidence (n,) or the reason it is absent, what the source is)}, no duplicates.

    A classifier's predictions have ``confidence`` only (softmax). A generative model's
    have ``answer_prob`` (token-probability product), ``answer_prob_mean`` and a
    ``confidence`` column that copies one of them (``generate.confidence``): ``confidence``
    is then named after the one it equals and that one is not reported a second time.
    """
    confidence = _column(frame, "confidence")
    product, mean = _column(frame, "answer_prob"), _column(frame, "answer_prob_mean")
    generative = "answer_prob" in frame or "answer_prob_mean" in frame
    sources: dict[str, tuple[np.ndarray | str, str]] = {}
    if not generative:
        sources["confidence"] = (confidence, SOFTMAX)
    elif _same(confidence, product):
        sources["confidence"] = (confidence, TOKEN_PRODUCT)
        sources["answer_prob_mean"] = (mean, TOKEN_MEAN)
    elif _same(confidence, mean):
        sources["confidence"] = (confidence, TOKEN_MEAN)
        sources["answer_prob"] = (product, TOKEN_PRODUCT)
    else:
        sources["confidence"] = (confidence, UNMATCHED)
        sources["answer_prob"] = (product, TOKEN_PRODUCT)
        sources["answer_prob_mean"] = (mean, TOKEN_MEAN)
    agreement: np.ndarray | str = "no samples column in the predictions"
    if "samples" in frame:
        agreement = sampled_agreement(frame["prediction"].tolist(), frame["samples"].tolist())
        if len(agreement) and np.isnan(agreement).all():
            agreement = "samples is null or empty for every row"
    sources["sampled_agreement"] = (agreement, AGREEMENT)
    return sources
