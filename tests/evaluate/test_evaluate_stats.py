"""Bootstrap CIs, exact McNemar and the across-seed summary."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from scipy.stats import t as t_dist

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


# --- image-level (cluster) bootstrap ---------------------------------------------------------


def test_unit_sums_groups_rows_in_order_of_first_appearance():
    table = np.array([[1.0, 1], [0, 1], [1, 1], [1, 1]])
    sums = stats.unit_sums(table, np.array(["b", "a", "b", "c"]))
    np.testing.assert_array_equal(sums, [[2, 2], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="one unit label per item"):
        stats.unit_sums(table, ["a", "b"])


def test_cluster_bootstrap_matches_a_plain_loop_over_images():
    rng = np.random.default_rng(1)
    images = np.repeat([f"img{i}" for i in range(40)], rng.integers(1, 9, size=40))
    values = (rng.random(images.size) < 0.6).astype(float)
    ours = stats.bootstrap_ci(values, 1000, seed=7, units=images)
    # By hand: draw 40 images with replacement; a resample's accuracy pools all their questions.
    names = list(dict.fromkeys(images))
    right = np.array([values[images == name].sum() for name in names])
    asked = np.array([(images == name).sum() for name in names])
    draws = np.random.default_rng(7).integers(0, 40, size=(1000, 40))
    means = right[draws].sum(axis=1) / asked[draws].sum(axis=1)
    assert ours == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_image_bootstrap_is_wider_when_an_images_questions_agree():
    # 60 images x 5 questions, each image answered all right or all wrong: the 300 answers
    # carry the information of 60, and only the image-level interval shows it.
    right = np.random.default_rng(2).random(60) < 0.5
    values = np.repeat(right, 5).astype(float)
    images = np.repeat(np.arange(60), 5)
    q_low, q_high = stats.bootstrap_ci(values, 1000, seed=0)
    i_low, i_high = stats.bootstrap_ci(values, 1000, seed=0, units=images)
    assert (i_high - i_low) > 1.8 * (q_high - q_low)


# --- Wilson fallback and the hull rule ------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 291), (291, 291), (1, 1), (0, 1), (5, 10), (37, 120)])
def test_wilson_interval_equals_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_zero_of_291_does_not_collapse_to_a_point():
    low, high, method = stats.mean_interval(np.zeros(291), units=np.repeat(np.arange(45), 7)[:291])
    # Wilson upper bound at p = 0 is z^2 / (n + z^2) = 3.8415 / 294.84 = 1.30 %.
    assert (low, method) == (0.0, "wilson") and high == pytest.approx(0.013029, abs=1e-6)
    low, high, method = stats.mean_interval(np.ones(1))
    assert method == "wilson" and high == 1.0 and low == pytest.approx(1 / (1 + 1.959963984540054**2))


def test_constant_non_binary_scores_keep_a_point_interval():
    assert stats.mean_interval(np.full(20, 0.5)) == (0.5, 0.5, "bootstrap")
    assert stats.mean_interval(np.array([]))[2] == "none"


def test_with_point_widens_only_when_needed():
    assert stats.with_point((0.2, 0.4), 0.1) == (0.1, 0.4)
    assert stats.with_point((0.2, 0.4), 0.3) == (0.2, 0.4)
    assert stats.with_point((0.0, 0.0), 1e-104) == (0.0, 1e-104)
    low, high = stats.with_point((math.nan, math.nan), 0.5)
    assert math.isnan(low) and math.isnan(high)


def test_percentile_interval_leaves_out_undefined_resamples():
    assert stats.percentile_interval(np.array([np.nan, 1.0, 1.0, 1.0])) == (1.0, 1.0)


# --- several seeds --------------------------------------------------------------------------


def test_seed_interval_is_the_t_interval_of_the_per_seed_values():
    values = [0.61, 0.64, 0.58, 0.66]
    out = stats.mean_std(values)
    sem = np.std(values, ddof=1) / math.sqrt(4)
    # scipy's own t interval of the mean (independent of our formula).
    low, high = t_dist.interval(0.95, 3, loc=np.mean(values), scale=sem)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))
    assert math.isnan(stats.mean_std([0.5])["ci_low"])
    # Not the mean of per-seed bounds: the aggregate of two seeds' blocks interval-izes each leaf.
    runs = [{"a": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}}, {"a": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8}}]
    agg = stats.aggregate_seeds(runs)["a"]["value"]
    half = t_dist.ppf(0.975, 1) * np.std([0.5, 0.7], ddof=1) / math.sqrt(2)
    assert (agg["ci_low"], agg["ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))


def test_a_single_image_is_resampled_by_question():
    # Three questions of one image, 2 right: resampling the one image would give [2/3, 2/3].
    values = np.array([1.0, 1.0, 0.0])
    assert stats.bootstrap_ci(values, seed=4, units=["img"] * 3) == stats.bootstrap_ci(values, seed=4)
    low, high, _ = stats.mean_interval(values, units=["img"] * 3)
    assert low < 2 / 3 < high


def test_a_mean_of_nltk_floor_scores_takes_the_wilson_rule_not_a_point():
    # Unsmoothed sentence BLEU of a miss is ~1e-231 (LLaVA-Med's bleu extra), not 0: still no
    # spread, so the interval is Wilson's for 0 of n (it contains the ~0 point), never a point.
    low, high, method = stats.mean_interval(np.full(50, 1e-231))
    assert method == "wilson" and low == 0.0 and high == pytest.approx(3.8416 / 53.8416, rel=1e-4)
    assert stats.mean_interval(np.full(50, 1e-6))[2] == "bootstrap"  # a real, if small, score
