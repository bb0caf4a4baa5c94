"""Bootstrap intervals of the scoring stage: units, the CI rules text, and the intervals of its
non-mean numbers (corpus BLEU, sacreBLEU, calibration).

Used by ``medvqa.evaluate.score``; ``spec`` arguments are its ScoreSpec. Each number is a
statistic of column sums of a per-item table, so ``stats.statistic_interval`` resamples the
same units (images or questions) as the accuracies, and the point estimate is the same
statistic of the whole split's sums (or agrees with it to float rounding, which the hull
rule absorbs).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medvqa.evaluate import calibration, stats

# Calibration numbers given an interval, in the order of calibration_report's keys.
CALIBRATION_KEYS = ("accuracy", "mean_confidence", "ece", "mce", "brier", "mean_confidence_wrong", "overconfidence_gap")
CALIBRATION_RULE = (
    "bootstrap over the same units as the accuracies: each resample recomputes the bins and every "
    "number from the resampled items (mean_confidence_wrong: resamples without a wrong answer left out)"
)


def bootstrap_units(frame: pd.DataFrame, spec: Any) -> np.ndarray | None:
    """(n,) image id of each row when the spec resamples images and the split has them, else None."""
    if spec.bootstrap_unit == "image" and "image_id" in frame:
        return frame["image_id"].astype(str).to_numpy()
    return None


def subset(units: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if units is None else units[mask]


def ci_protocol(spec: Any, items: str, clustered: bool = False) -> str:
    """How the confidence intervals were drawn; ``items``: what was resampled (questions, images);
    ``clustered``: images resampled with all of their questions."""
    bootstrap = stats.BOOTSTRAP_DESCRIPTION.format(
        items=items, seed=spec.bootstrap_seed, resamples=spec.bootstrap_resamples, level=spec.ci_level,
        cluster=stats.CLUSTER_NOTE if clustered else "",
    )
    rules = [stats.WILSON_RULE, stats.BLEU_WILSON_RULE, stats.HULL_RULE]
    if clustered:
        rules.insert(0, stats.SINGLE_UNIT_RULE)
    return "; ".join([bootstrap, *rules])


def vqa_ci_protocol(frame: pd.DataFrame, spec: Any) -> str:
    """ci_protocol of a VQA split, saying when images were asked for but the split has no image_id."""
    if bootstrap_units(frame, spec) is not None:
        return ci_protocol(spec, "images", clustered=True)
    if spec.bootstrap_unit == "image":
        return ci_protocol(spec, "questions") + " (bootstrap_unit image, but the split has no image_id column)"
    return ci_protocol(spec, "questions")


def nltk_bleu_from_sums(sums: np.ndarray, order: int, max_order: int = 4) -> np.ndarray:
    """(rows,) unsmoothed corpus BLEU-``order`` of summed ``metrics.bleu_statistics`` rows, as nltk.

    Mirrors nltk ``corpus_bleu`` with ``SmoothingFunction().method0`` (nltk/translate/bleu_score.py,
    corpus_bleu and method0): 0 when no unigram matches; a higher order without a match
    counts as precision ``sys.float_info.min`` (so the value is ~1e-77 or less, not 0);
    brevity penalty 1 when the hypotheses are longer than the references, 0 for no
    hypothesis tokens, else exp(1 - r / c). Point estimate and bootstrap statistic are this
    one function, so an interval cannot exclude its point by a different zero rule.
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    matches = sums[:, :order]
    totals = sums[:, max_order : max_order + order]
    hyp_len, ref_len = sums[:, 2 * max_order], sums[:, 2 * max_order + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(matches > 0, matches / totals, sys.float_info.min)
        log_mean = np.log(precision).sum(axis=1) / order
        brevity = np.where(hyp_len > ref_len, 1.0, np.exp(1.0 - ref_len / hyp_len))
    brevity = np.where(hyp_len == 0, 0.0, brevity)
    return np.where(matches[:, 0] > 0, brevity * np.exp(log_mean), 0.0)


def nltk_bleu_summary(
    table: np.ndarray, order: int, max_order: int, point: float, spec: Any, units: np.ndarray | None
) -> dict[str, Any]:
    """{"value", "ci_low", "ci_high", "n", "ci_method"} of nltk corpus BLEU-``order``.

    ``table`` (n, 2 * max_order + 2): ``metrics.bleu_statistics`` rows; the bootstrap resamples
    ``units`` (n,) or single items, and BLEU_WILSON_RULE adds its end where an order has no match
    or matches fully (ci_method "wilson_precisions", else "bootstrap"; "none" for n = 0).
    """
    n = len(table)

    def statistic(sums: np.ndarray) -> np.ndarray:
        return nltk_bleu_from_sums(sums, order, max_order)

    interval = stats.statistic_interval(
        table, statistic, point, spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level, units
    )
    ends = stats.bleu_wilson_ends(table.sum(axis=0), order, max_order, n, spec.ci_level)
    low, high = stats.widen(interval, ends)
    method = "none" if n == 0 else "wilson_precisions" if ends else "bootstrap"
    return {"value": point, "ci_low": low, "ci_high": high, "n": n, "ci_method": method}


def sacrebleu_interval(
    bleu: Any, hypotheses: Sequence[str], streams: Sequence[Sequence[str | None]], point: float, spec: Any
) -> tuple[float, float, str]:
    """(low, high, ci_method) of sacreBLEU (fraction): bootstrap over images of its per-segment statistics,
    plus BLEU_WILSON_RULE's end ("wilson_precisions") where an order has no match or matches fully.

    ``bleu`` is the configured ``sacrebleu.metrics.BLEU``; per-segment counts and the score
    from summed counts are sacrebleu's own functions, the ones its paired bootstrap uses
    (sacrebleu/significance.py, ``_extract_corpus_statistics`` / ``_compute_score_from_stats``).
    """
    table = np.array(bleu._extract_corpus_statistics(list(hypotheses), streams), dtype=np.float64)

    def statistic(sums: np.ndarray) -> np.ndarray:
        rounded = np.rint(sums).astype(np.int64).tolist()
        return np.array([bleu._compute_score_from_stats(row).score / 100.0 for row in rounded])

    interval = stats.statistic_interval(
        table, statistic, point, spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level
    )
    # sacrebleu's row: sys_len, ref_len, correct 1..N, total 1..N; BLEU_WILSON_RULE takes matches first.
    orders = bleu.max_ngram_order
    sums = table.sum(axis=0)
    ends = stats.bleu_wilson_ends(np.r_[sums[2:], sums[:2]], orders, orders, len(table), spec.ci_level)
    return (*stats.widen(interval, ends), "wilson_precisions" if ends else "bootstrap")


def calibration_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """(n, 3 * n_bins + 5) additive per-item calibration quantities.

    Columns: per bin (count, confidence, correct) one-hot on the item's bin, then squared
    error, confidence if wrong, wrong, confidence, correct.
    """
    idx = calibration.bin_index(confidence, n_bins)
    n = len(confidence)
    per_bin = np.zeros((n, n_bins, 3))
    per_bin[np.arange(n), idx] = np.column_stack([np.ones(n), confidence, correct])
    wrong = (correct == 0).astype(np.float64)
    tail = np.column_stack([(confidence - correct) ** 2, confidence * wrong, wrong, confidence, correct])
    return np.column_stack([per_bin.reshape(n, 3 * n_bins), tail])


def calibration_statistics(sums: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """Every number of CALIBRATION_KEYS, (rows,) each, from summed ``calibration_table`` rows."""
    sums = np.atleast_2d(sums)
    bins = sums[:, : 3 * n_bins].reshape(len(sums), n_bins, 3)
    count, conf, corr = bins[..., 0], bins[..., 1], bins[..., 2]
    sq, conf_wrong, wrong, conf_all, corr_all = sums[:, 3 * n_bins :].T
    n = count.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = np.where(count > 0, np.abs(corr - conf) / count, -np.inf)
        return {
            "accuracy": corr_all / n,
            "mean_confidence": conf_all / n,
            "ece": np.abs(corr - conf).sum(axis=1) / n,
            "mce": np.where(n > 0, gaps.max(axis=1), np.nan),
            "brier": sq / n,
            "mean_confidence_wrong": conf_wrong / wrong,
            "overconfidence_gap": (conf_all - corr_all) / n,
        }


def calibration_intervals(
    report: dict, confidence: np.ndarray, correct: np.ndarray, units: np.ndarray | None, spec: Any
) -> dict[str, dict[str, float]]:
    """{key: {"ci_low", "ci_high"}} for CALIBRATION_KEYS of a ``calibration_report``.

    Rows with NaN confidence are dropped, as the report drops them; ``units`` (n,) or None.
    One bootstrap draws every number's distribution; accuracy is a 0/1 mean and takes
    ``stats.mean_interval`` (Wilson when every item is right or every item wrong).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    keep = ~np.isnan(confidence)
    conf, corr = confidence[keep], np.asarray(correct, dtype=np.float64)[keep]
    kept_units = None if units is None else np.asarray(units)[keep]
    if conf.size == 0:
        return {key: {"ci_low": np.nan, "ci_high": np.nan} for key in CALIBRATION_KEYS}

    def statistic(sums: np.ndarray) -> np.ndarray:
        values = calibration_statistics(sums, spec.n_bins)
        return np.column_stack([values[key] for key in CALIBRATION_KEYS])

    table = calibration_table(conf, corr, spec.n_bins)
    dist = stats.bootstrap_statistic(table, statistic, spec.bootstrap_resamples, spec.bootstrap_seed, kept_units)
    out = {}
    for j, key in enumerate(CALIBRATION_KEYS):
        low, high = stats.with_point(stats.percentile_interval(dist[:, j], spec.ci_level), report[key])
        out[key] = {"ci_low": low, "ci_high": high}
    low, high, _ = stats.mean_interval(
        corr, spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level, kept_units
    )
    out["accuracy"] = {"ci_low": low, "ci_high": high}
    return out
