"""Statistics for honest tables: bootstrap confidence intervals, exact McNemar, seed spread.

Used by the scoring stage (``medvqa.evaluate.score``), which writes a CI beside every
accuracy, and by the table / figure stages, which compare models on the same question ids
(``mcnemar``) and summarise repeated training runs (``mean_std``, ``aggregate_seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

BOOTSTRAP_DESCRIPTION = (
    "percentile bootstrap over {items} (items resampled with replacement, same size as "
    "the split); numpy default_rng({seed}), {resamples} resamples, {level:.0%} interval"
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


def bootstrap_statistic(
    table: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap distribution of a statistic of column sums.

    ``table`` (n_items, k) holds additive per-item quantities (a 0/1 correctness column,
    BLEU n-gram counts, ...). Each resample draws n items with replacement; ``statistic``
    maps the (rows, k) resampled column sums to (rows,) values. Returns (n_resamples,).
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim == 1:
        table = table[:, None]
    n = table.shape[0]
    if n == 0:
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    parts = [statistic(counts @ table) for counts in _count_chunks(n, n_resamples, rng)]
    return np.concatenate(parts)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (n,); (nan, nan) when n == 0."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    means = bootstrap_statistic(values, lambda sums: sums[:, 0] / n, n_resamples, seed)
    return percentile_interval(means, level)


def percentile_interval(distribution: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(low, high) quantiles enclosing ``level`` of a bootstrap distribution."""
    if len(distribution) == 0 or np.isnan(distribution).all():
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(distribution, [alpha, 1.0 - alpha])
    return (float(low), float(high))


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


def mean_std(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """{"mean", "std", "n"} of per-seed values; std is the sample std (ddof=1), nan for n < 2.

    NaN values (a seed whose metric was undefined) are dropped and not counted in n.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    mean = float(arr.mean()) if n else math.nan
    std = float(arr.std(ddof=1)) if n > 1 else math.nan
    return {"mean": mean, "std": std, "n": n}


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean/std across seeds of every numeric leaf shared by all metric dicts.

    ``results`` are parsed metrics JSONs of one (dataset, model, split), one per seed; the
    output mirrors their nesting with each numeric leaf replaced by ``mean_std`` of its
    per-seed values. Leaves missing from some seed, strings and lists are left out.
    """
    if not results:
        return {}
    return _aggregate(list(results))


def _aggregate(nodes: list[Any]) -> Any:
    first = nodes[0]
    if isinstance(first, Mapping):
        if not all(isinstance(node, Mapping) for node in nodes):
            return None
        out = {}
        for key in first:
            if all(key in node for node in nodes):
                value = _aggregate([node[key] for node in nodes])
                if value is not None and value != {}:
                    out[key] = value
        return out
    if all(_is_number(node) for node in nodes):
        return mean_std([math.nan if node is None else node for node in nodes])
    return None


def _is_number(value: Any) -> bool:
    # JSON null stands for NaN in metrics files; bool is an int subclass but not a metric.
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
