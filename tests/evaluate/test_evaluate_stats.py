"""Bootstrap CIs, exact McNemar and the across-seed summary."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from medvqa.evaluate import stats


def test_bootstrap_ci_matches_a_plain_loop_with_the_same_generator():
    values = (np.random.default_rng(5).random(200) < 0.7).astype(float)
    ours = stats.bootstrap_ci(values, n_resamples=1000, seed=3)
    rng = np.random.default_rng(3)
    means = values[rng.integers(0, 200, size=(1000, 200))].mean(axis=1)
    assert ours == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_bootstrap_ci_is_reproducible_chunked_and_brackets_the_mean():
    values = np.random.default_rng(0).random(50_000)  # several chunks of resamples
    low, high = stats.bootstrap_ci(values, 1000, seed=0)
    assert (low, high) == stats.bootstrap_ci(values, 1000, seed=0)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(values.size), rel=0.15)


def test_bootstrap_ci_degenerate_cases():
    assert stats.bootstrap_ci(np.ones(30)) == (1.0, 1.0)
    low, high = stats.bootstrap_ci(np.array([]))
    assert math.isnan(low) and math.isnan(high)


def test_mcnemar_hand_computed():
    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    result = stats.mcnemar(a, b)
    assert (result["b"], result["c"], result["n"]) == (5, 1, 10)
    # 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * (1 + 6) / 64.
    assert result["p_value"] == pytest.approx(14 / 64)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 3), (0, 9), (40, 61), (1500, 1620)])
def test_exact_binomial_equals_scipy(b, c):
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert stats.exact_binomial_two_sided(b, c) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="aligned"):
        stats.mcnemar([True, False], [True])


def test_mean_std_uses_sample_std_and_drops_nan():
    out = stats.mean_std([0.5, 0.7, np.nan, 0.6])
    assert out["n"] == 3 and out["mean"] == pytest.approx(0.6) and out["std"] == pytest.approx(0.1)
    assert math.isnan(stats.mean_std([0.4])["std"])


def test_aggregate_seeds_walks_shared_numeric_leaves():
    runs = [
        {"accuracy": {"overall": {"value": 0.5, "n": 10}}, "protocol": "x", "only_here": 1.0},
        {"accuracy": {"overall": {"value": 0.7, "n": 10}}, "protocol": "x"},
    ]
    out = stats.aggregate_seeds(runs)
    assert out["accuracy"]["overall"]["value"]["mean"] == pytest.approx(0.6)
    assert out["accuracy"]["overall"]["n"]["std"] == 0.0
    assert "protocol" not in out and "only_here" not in out
