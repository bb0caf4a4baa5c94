"""Statistics for honest tables: bootstrap confidence intervals, exact McNemar, seed spread.

Used by the scoring stage (``medvqa.evaluate.score``), which writes a CI beside every
number, and by the table / figure stages, which compare models on the same question ids
(``mcnemar``) and summarise repeated training runs (``mean_std``, ``aggregate_seeds``).

The bootstrap resamples *units*: by default images, each with all of its questions (a
cluster bootstrap, since questions about one image are not independent), or single
questions. Every statistic is a function of column sums of a per-item table, so one
(resamples x units) count matrix times the per-unit table gives all resamples at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

BOOTSTRAP_DESCRIPTION = (
    "percentile bootstrap over {items} ({items} resampled with replacement, as many as the split "
    "holds{cluster}); numpy default_rng({seed}), {resamples} resamples, {level:.0%} interval"
)
CLUSTER_NOTE = ", each with all of its questions: a cluster bootstrap, so a value is a ratio of resampled sums"
WILSON_RULE = (
    "where every scored item is 0 or every item is 1 (within 1e-12: an unsmoothed sentence BLEU miss is "
    "~1e-231; the bootstrap has no spread) the interval is the Wilson score interval of that proportion "
    "with n = the number of scored items (clustering cannot be estimated from a sample without variation)"
)
SCALED_WILSON_RULE = (
    "a mean of per-item values in [0, M] (M = 1 for ROUGE, 10 for CIDEr-D) where every item scores 0 or every "
    "item M: M x the Wilson interval of 0 or n of n, n = the items (P(item = 0) <= 1 - mean / M, so a bound "
    "on a 0/M proportion from n zeros bounds the mean too); ci_method \"wilson\" for M = 1, "
    "\"wilson_scaled\" otherwise"
)
BLEU_WILSON_RULE = (
    "corpus BLEU-k: a clipped n-gram precision of order j <= k with no match in the split is 0 in every "
    "resample (BLEU stays at its ~0 floor), and one matching every hypothesis n-gram is 1 in every resample; "
    "so where some order has no match the upper end is BLEU-k with each zero precision at the Wilson upper "
    "bound of 0 of n, and where every order matches fully the lower end is BLEU-k with every precision at the "
    "Wilson lower bound of n of n, the other precisions and the brevity penalty as observed (a penalty of 0, "
    "no hypothesis token at all, taken as 1); n = the scored items (captions or answers, not n-grams: the "
    "n-grams of one text are not independent); ci_method \"wilson_precisions\""
)
EXTREME_ATOL = 1e-12  # a mean score this close to 0 or 1 in every item takes the Wilson rule
SINGLE_UNIT_RULE = (
    "a subset (e.g. one modality) whose questions all belong to one image is resampled by question, "
    "since resampling its single image gives no spread"
)
HULL_RULE = (
    "an interval that leaves out its own point estimate (a skewed statistic, or float rounding) is "
    "widened to reach it: [min(low, value), max(high, value)]"
)
SEED_INTERVAL = (
    "mean over seeds ± sample std (ddof 1); interval: two-sided Student t interval of the mean of "
    "the per-seed values, mean ± t(level, n_seeds - 1) * std / sqrt(n_seeds); null for one seed"
)
# Upper bound on resample-count matrix cells built at once (4M int64 = 32 MiB).
_CHUNK_CELLS = 1 << 22


def _count_chunks(n: int, n_resamples: int, rng: np.random.Generator):
    """Yield (rows, n) int matrices: how often each item is drawn in each resample."""
    rows_per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_resamples:
        rows = min(rows_per_chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(rows, n))
        # Offsetting each row by row*n turns a per-row bincount into one flat bincount.
        flat = idx + (np.arange(rows)[:, None] * n)
        yield np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n)
        done += rows


def unit_sums(table: np.ndarray, units: Sequence[Any] | np.ndarray | None) -> np.ndarray:
    """(n_units, k) sums of the rows of ``table`` (n_items, k) sharing a unit label (units: (n_items,)).

    ``units`` None keeps one unit per item. Units keep the order of their first appearance.
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim == 1:
        table = table[:, None]
    if units is None:
        return table
    units = np.asarray(units)
    if units.shape != (table.shape[0],):
        raise ValueError(f"need one unit label per item: {units.shape[0]} labels for {table.shape[0]} items")
    _, first, inverse = np.unique(units, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # unit index -> rank of its first appearance
    out = np.zeros((len(first), table.shape[1]))
    np.add.at(out, order[inverse.ravel()], table)
    return out


def bootstrap_statistic(
    table: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    units: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """Bootstrap distribution of a statistic of column sums.

    ``table`` (n_items, k) holds additive per-item quantities (a 0/1 correctness column,
    BLEU n-gram counts, ...). Each resample draws as many units as there are, with
    replacement (``units`` (n_items,) labels, e.g. image ids; None, or a single label
    (SINGLE_UNIT_RULE): each item is a unit);
    ``statistic`` maps the (rows, k) resampled column sums to (rows,) values. Returns
    (n_resamples,).
    """
    if units is not None and len(set(np.asarray(units).tolist())) < 2:
        units = None  # SINGLE_UNIT_RULE: one image alone gives every resample the same value
    table = unit_sums(table, units)
    n = table.shape[0]
    if n == 0:
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    parts = [statistic(counts @ table) for counts in _count_chunks(n, n_resamples, rng)]
    return np.concatenate(parts)


def _ratio(sums: np.ndarray) -> np.ndarray:
    # Column 0: summed scores, column 1: summed item counts of the resampled units.
    return sums[:, 0] / sums[:, 1]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    units: Sequence[Any] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (n,); (nan, nan) when n == 0.

    With ``units`` (n,) the units are resampled and each resample's mean is its summed
    score over its summed item count (a cluster bootstrap).
    """
    values = np.asarray(values, dtype=np.float64)
    table = np.column_stack([values, np.ones_like(values)])
    means = bootstrap_statistic(table, _ratio, n_resamples, seed, units)
    return percentile_interval(means, level)


def percentile_interval(distribution: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(low, high) quantiles enclosing ``level`` of a bootstrap distribution.

    NaN resamples (a statistic undefined on that resample, e.g. a mean over wrong answers
    when a resample holds none) are left out; all NaN gives (nan, nan).
    """
    distribution = np.asarray(distribution, dtype=np.float64)
    if len(distribution) == 0 or np.isnan(distribution).all():
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(distribution, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n; (nan, nan) for n == 0."""
    if n <= 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 the lower bound is 0 exactly and at p = 1 the upper bound 1; float rounding leaves ~1e-19.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def extreme_wilson(
    values: Sequence[float] | np.ndarray, level: float = 0.95, top: float = 1.0, atol: float = 0.0
) -> tuple[float, float] | None:
    """``top`` x the Wilson interval of 0 or n of n when every value of ``values`` (n,) is 0 or every
    value is ``top`` (within ``atol``), else None (WILSON_RULE, SCALED_WILSON_RULE)."""
    values = np.asarray(values, dtype=np.float64)
    for extreme, successes in ((0.0, 0), (top, values.size)):
        if values.size and np.all(np.abs(values - extreme) <= atol):
            low, high = wilson_interval(successes, values.size, level)
            return (top * low, top * high)
    return None


def brevity_penalty(hyp_len: float, ref_len: float) -> float:
    """BLEU's brevity penalty of summed lengths: 1 if hyp_len >= ref_len, else exp(1 - ref_len / hyp_len);
    0 for hyp_len 0 (nltk, sacreBLEU)."""
    if hyp_len >= ref_len:
        return 1.0
    return math.exp(1.0 - ref_len / hyp_len) if hyp_len > 0 else 0.0


def bleu_wilson_ends(sums: np.ndarray, order: int, max_order: int, n: int, level: float = 0.95) -> tuple[float, ...]:
    """The ends BLEU_WILSON_RULE adds to a corpus BLEU-``order`` interval; () where it adds none.

    ``sums`` (2 * max_order + 2,): a split's summed BLEU statistics laid out as clipped matches of
    orders 1..max_order, hypothesis n-grams of orders 1..max_order, hypothesis length, reference
    length (``metrics.bleu_statistics``, ``captions.bleu_table``); ``n``: the scored items.
    """
    sums = np.asarray(sums, dtype=np.float64)
    matches, guesses = sums[:order], sums[max_order : max_order + order]
    if n <= 0:
        return ()
    brevity = brevity_penalty(sums[2 * max_order], sums[2 * max_order + 1])
    if np.any(matches <= 0):
        upper = wilson_interval(0, n, level)[1]
        precision = [m / g if m > 0 else upper for m, g in zip(matches, guesses)]
        return ((brevity or 1.0) * math.exp(float(np.mean(np.log(precision)))),)
    if np.all(matches >= guesses):
        return (brevity * wilson_interval(n, n, level)[0],)
    return ()


def widen(interval: tuple[float, float], ends: Sequence[float]) -> tuple[float, float]:
    """``interval`` widened to contain every one of ``ends`` (points; NaN ones pass, see ``with_point``)."""
    for end in ends:
        interval = with_point(interval, end)
    return interval


def with_point(interval: tuple[float, float], point: float) -> tuple[float, float]:
    """``interval`` widened to contain ``point`` (HULL_RULE); NaN bounds or point pass through."""
    low, high = interval
    if math.isnan(point) or math.isnan(low) or math.isnan(high):
        return (low, high)
    return (min(low, point), max(high, point))


def mean_interval(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    units: Sequence[Any] | np.ndarray | None = None,
) -> tuple[float, float, str]:
    """(low, high, method) of the mean of ``values`` (n,): the bootstrap of ``bootstrap_ci``,
    Wilson (WILSON_RULE) for all-0 or all-1 scores (within EXTREME_ATOL), then widened to the mean (HULL_RULE).

    ``method`` is "bootstrap", "wilson" or "none" (no items).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return (math.nan, math.nan, "none")
    point = float(values.mean())
    # Within 1e-12 counts as 0 or 1: unsmoothed sentence BLEU floors a miss at ~1e-231, not 0.
    wilson = extreme_wilson(values, level, atol=EXTREME_ATOL)
    if wilson is not None:
        return (*wilson, "wilson")
    low, high = with_point(bootstrap_ci(values, n_resamples, seed, level, units), point)
    return (low, high, "bootstrap")


def statistic_interval(
    table: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    point: float,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    units: Sequence[Any] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic of column sums, widened to ``point`` (HULL_RULE)."""
    dist = bootstrap_statistic(table, statistic, n_resamples, seed, units)
    return with_point(percentile_interval(dist, level), point)


def mcnemar(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Exact two-sided McNemar test on paired per-question correctness.

    ``correct_a`` and ``correct_b`` (n,) are aligned on the same question ids. Returns
    {"n", "b": a right & b wrong, "c": a wrong & b right, "p_value", "test"}; the p-value is
    the two-sided exact binomial min(1, 2 * P(X <= min(b, c))), X ~ Binomial(b + c, 1/2),
    and 1.0 when b + c == 0.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_arr = np.asarray(correct_b, dtype=bool)
    if a.shape != b_arr.shape or a.ndim != 1:
        raise ValueError(f"mcnemar needs two aligned 1-d arrays, got shapes {a.shape} and {b_arr.shape}")
    b = int(np.sum(a & ~b_arr))
    c = int(np.sum(~a & b_arr))
    return {
        "n": int(a.size),
        "b": b,
        "c": c,
        "p_value": exact_binomial_two_sided(b, c),
        "test": "exact McNemar (binomial, two-sided)",
    }


def exact_binomial_two_sided(b: int, c: int) -> float:
    """min(1, 2 * P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2), in exact integer arithmetic."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    # Python divides big integers exactly before rounding, so huge n neither overflows nor loses the tail.
    return min(1.0, 2 * tail / (1 << n))


def mean_std(values: Sequence[float] | np.ndarray, level: float = 0.95) -> dict[str, float | int]:
    """{"mean", "std", "ci_low", "ci_high", "n"} of per-seed values (SEED_INTERVAL).

    std is the sample std (ddof=1); std and the t interval are nan for n < 2. NaN values
    (a seed whose metric was undefined) are dropped and not counted in n.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    mean = float(arr.mean()) if n else math.nan
    std = float(arr.std(ddof=1)) if n > 1 else math.nan
    low, high = t_interval(mean, std, n, level)
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high, "n": n}


def t_interval(mean: float, std: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Student t interval of a mean of n values with sample std ``std``; (nan, nan) for n < 2."""
    if n < 2 or math.isnan(std):
        return (math.nan, math.nan)
    from scipy.stats import t  # imported here: only the seed summaries need it

    half = float(t.ppf(0.5 + level / 2.0, n - 1)) * std / math.sqrt(n)
    return (mean - half, mean + half)


def aggregate_seeds(results: Sequence[Mapping[str, Any]], level: float = 0.95) -> dict[str, Any]:
    """Mean/std/t interval across seeds of every numeric leaf shared by all metric dicts.

    ``results`` are parsed metrics JSONs of one (dataset, model, split), one per seed; the
    output mirrors their nesting with each numeric leaf replaced by ``mean_std`` of its
    per-seed values (SEED_INTERVAL at ``level``). Leaves missing from some seed, strings and
    lists are left out.
    """
    if not results:
        return {}
    return _aggregate(list(results), level)


def _aggregate(nodes: list[Any], level: float = 0.95) -> Any:
    first = nodes[0]
    if isinstance(first, Mapping):
        if not all(isinstance(node, Mapping) for node in nodes):
            return None
        out = {}
        for key in first:
            if all(key in node for node in nodes):
                value = _aggregate([node[key] for node in nodes], level)
                if value is not None and value != {}:
                    out[key] = value
        return out
    if all(_is_number(node) for node in nodes):
        return mean_std([math.nan if node is None else node for node in nodes], level)
    return None


def _is_number(value: Any) -> bool:
    # JSON null stands for NaN in metrics files; bool is an int subclass but not a metric.
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
