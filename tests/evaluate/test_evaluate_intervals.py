"""Intervals of every reported number: BLEU / calibration statistics, and a property test that
every interval the scoring stage writes contains its own point estimate."""

import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from medvqa.evaluate import calibration, intervals, metrics, stats
from medvqa.evaluate.captions import CaptionOptions, coco_scores, imageclef_scores
from medvqa.evaluate.score import score_captions, score_vqa
from medvqa.evaluate.spec import ScoreSpec

WORDS = ["the", "left", "lung", "shows", "a", "mass", "no", "effusion", "heart", "is", "enlarged", "ct"]
ANSWERS = ["yes", "no", "left lung", "liver", "2 cm", "mass in the right upper lobe", "ct"]


def _corpus(rng, n, max_len=8):
    hyps = [list(rng.choice(WORDS, rng.integers(0, max_len))) for _ in range(n)]
    refs = [[list(rng.choice(WORDS, rng.integers(1, max_len))) for _ in range(rng.integers(1, 3))] for _ in range(n)]
    return hyps, refs


@pytest.mark.parametrize("seed", range(12))
def test_nltk_bleu_from_sums_equals_nltk_corpus_bleu(seed):
    rng = np.random.default_rng(seed)
    hyps, refs = _corpus(rng, int(rng.integers(1, 6)), max_len=int(rng.integers(2, 9)))
    table = metrics.bleu_statistics(hyps, refs, 4)
    for k in range(1, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = nltk_corpus_bleu(refs, hyps, weights=metrics.BLEU_WEIGHTS[k], auto_reweigh=False)
        ours = intervals.nltk_bleu_from_sums(table.sum(axis=0), k, 4)[0]
        assert ours == pytest.approx(expected, rel=1e-9, abs=0.0), (k, hyps, refs)


def test_no_matching_4gram_gives_nltk_tiny_value_not_zero():
    hyps, refs = [["the", "lung", "a", "heart"]], [[["the", "lung", "is", "heart"]]]
    table = metrics.bleu_statistics(hyps, refs, 4)
    value = intervals.nltk_bleu_from_sums(table.sum(axis=0), 4, 4)[0]
    # nltk method0: p3 = p4 = 0 become sys.float_info.min, so BLEU-4 = (3/4 * 1/3 * min^2)^(1/4) ~ 1e-154.
    assert 0 < value < 1e-100
    assert value == pytest.approx(nltk_corpus_bleu([r for r in refs], hyps, auto_reweigh=False), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_calibration_statistics_of_the_whole_split_equal_the_report(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    conf = np.round(rng.random(n), 2)  # rounding puts some confidences on bin edges
    correct = (rng.random(n) < 0.6).astype(float)
    report = calibration.calibration_report(conf, correct, 15)
    values = intervals.calibration_statistics(intervals.calibration_table(conf, correct, 15).sum(axis=0), 15)
    for key in intervals.CALIBRATION_KEYS:
        expected = report[key]
        if math.isnan(expected):
            assert math.isnan(values[key][0])
        else:
            assert values[key][0] == pytest.approx(expected, abs=1e-12), key


def test_sacrebleu_statistic_of_the_whole_corpus_equals_corpus_score():
    from sacrebleu.metrics import BLEU

    rng = np.random.default_rng(4)
    hyps = [" ".join(rng.choice(WORDS, rng.integers(1, 12))).capitalize() + "." for _ in range(15)]
    refs = [[" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(15)], [None] * 14 + ["The heart."]]
    bleu = BLEU(lowercase=True)
    point = bleu.corpus_score(hyps, refs).score / 100.0
    table = np.array(bleu._extract_corpus_statistics(hyps, refs))
    assert bleu._compute_score_from_stats(table.sum(axis=0).tolist()).score / 100.0 == pytest.approx(point, rel=1e-12)
    spec = ScoreSpec()
    low, high, method = intervals.sacrebleu_interval(bleu, hyps, refs, point, spec)
    assert low < point < high
    # No 3- or 4-gram of these captions matches: BLEU_WILSON_RULE's upper end applies.
    assert table.sum(axis=0)[4:6].tolist() == [0, 0] and method == "wilson_precisions"


# --- property: every interval contains its point ---------------------------------------------


def _interval_pairs(node, path=()):
    """(path, value, low, high) of every interval in a metrics JSON."""
    if isinstance(node, dict):
        if {"value", "ci_low", "ci_high"} <= set(node):
            yield path, node["value"], node["ci_low"], node["ci_high"]
        for key, bounds in (node.get("intervals") or {}).items():
            yield (*path, key), node[key], bounds["ci_low"], bounds["ci_high"]
        for key, child in node.items():
            if key not in ("intervals", "protocol", "provenance", "spec"):
                yield from _interval_pairs(child, (*path, key))


def _check_contains(out):
    pairs = list(_interval_pairs(out))
    assert pairs
    for path, value, low, high in pairs:
        if value is None:
            assert low is None and high is None, path
            continue
        assert low is not None and high is not None, path
        assert low <= value <= high, (path, low, value, high)
    return pairs


def _random_vqa(rng, n, mode):
    answers = rng.choice(ANSWERS, n)
    data = pd.DataFrame({
        "question_id": [f"q{i}" for i in range(n)],
        "image_id": [f"img{i}" for i in rng.integers(0, max(1, n // 3), size=n)],
        "answer": answers,
        "answer_type": ["closed" if a in ("yes", "no") else "open" for a in answers],
        "modality": rng.choice(["CT", "MRI"], n),
    })
    guess = {"right": answers, "wrong": np.full(n, "zzz")}.get(mode, rng.choice([*ANSWERS, "the left lung"], n))
    conf = rng.random(n)
    conf[rng.random(n) < 0.1] = np.nan
    predictions = pd.DataFrame({
        "question_id": data["question_id"].sample(frac=1.0, random_state=0),
        "prediction": guess,
        "confidence": conf,
        "answer_prob": rng.random(n),
    })
    return data, predictions


@pytest.mark.parametrize("unit", ["image", "question"])
@pytest.mark.parametrize("mode", ["random", "right", "wrong"])
@pytest.mark.parametrize("n", [1, 2, 7, 40, 150])
def test_every_vqa_interval_contains_its_point(tmp_path, n, mode, unit):
    rng = np.random.default_rng(n * 7 + len(mode))
    data, predictions = _random_vqa(rng, n, mode)
    data.to_parquet(tmp_path / "d.parquet")
    predictions.to_parquet(tmp_path / "p.parquet")
    out = score_vqa(tmp_path / "d.parquet", tmp_path / "p.parquet", tmp_path / "m.json", ScoreSpec(bootstrap_unit=unit))
    pairs = _check_contains(out)
    paths = {p for p, *_ in pairs}
    for number in ("ece", "mce", "brier", "overconfidence_gap", "accuracy"):
        assert ("calibration", "answer_prob", number) in paths
    # No accuracy interval collapses to a point at 0 % or 100 %, nor a BLEU one (nltk's ~1e-154 floor included).
    for path, value, low, high in pairs:
        if path[0] == "accuracy" and value in (0.0, 1.0):
            assert low < high, path
    _check_not_a_point([pair for pair in pairs if pair[0][0] == "bleu"], 0.0)
    methods = dict(_methods(out["bleu"]))
    assert len(methods) == 8 and set(methods.values()) <= {"bootstrap", "wilson", "wilson_precisions"}, methods


def _caption_pairs(rng, n, mode, short):
    """(references, generated) of n images: random, every caption right, or every caption wrong."""
    # A word of its own per image, and 4+ tokens, give every order a weighted n-gram: CIDEr-D 10 when right.
    refs = [" ".join(rng.choice(WORDS, rng.integers(3, 10))) + f" finding{i}" for i in range(n)]
    if mode == "right":
        return refs, list(refs)
    if mode == "wrong":  # words no reference holds, so no n-gram of any order matches
        return refs, [" ".join(f"zz{i}x{j}" for j in range(rng.integers(1, 6))) for i in range(n)]
    # Short generated captions rarely share a 4-gram: BLEU-4 ~ 1e-100, pinned near 0 by the bootstrap.
    return refs, [" ".join(rng.choice(WORDS, rng.integers(0, 4 if short else 10))) for _ in range(n)]


# A value this close to a metric's floor or ceiling needs an interval that is not a point there.
EXTREMES = {"cider_d": (0.0, 10.0)}


def _check_not_a_point(pairs, min_width):
    for path, value, low, high in pairs:
        if value is None:
            continue
        floor, ceiling = EXTREMES.get(path[-1], (0.0, 1.0))
        if abs(value - floor) < 1e-6 or abs(value - ceiling) < 1e-6:
            assert high - low > min_width, (path, low, value, high)


def _methods(node, path=()):
    """(path, ci_method) of every interval in a metrics JSON (None where a summary lacks one)."""
    if isinstance(node, dict):
        if {"value", "ci_low", "ci_high"} <= set(node) or {"ci_low", "ci_high"} == set(node) - {"ci_method"}:
            yield path, node.get("ci_method")
        for key, child in node.items():
            if key not in ("protocol", "provenance", "spec"):
                yield from _methods(child, (*path, key))


@pytest.mark.parametrize(("seed", "mode"), [*((s, "random") for s in range(8)), (2, "right"), (40, "right"),
                                            (1, "wrong"), (50, "wrong")])
def test_every_caption_interval_contains_its_point(tmp_path, seed, mode):
    rng = np.random.default_rng(seed)
    n = [1, 2, 3, 5, 20, 40, 2, 1][seed] if mode == "random" else seed
    refs, generated = _caption_pairs(rng, n, mode, short=seed % 2)
    ids = [f"c{i}" for i in range(n)]
    pd.DataFrame({"image_id": ids, "caption": refs}).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame({"image_id": ids, "generated": generated}).to_parquet(tmp_path / "g.parquet")
    out = score_captions(tmp_path / "d.parquet", tmp_path / "g.parquet", tmp_path / "m.json", ScoreSpec())
    pairs = _check_contains(out)
    assert ("sacrebleu", "bleu_4") in {p for p, *_ in pairs}
    # No caption or corpus-BLEU interval collapses to a point at 0 % or 100 % (CIDEr-D: 0 or 10).
    # Random short captions can have a brevity penalty near 0, and the Wilson end keeps it: only > 0 there.
    _check_not_a_point(pairs, 0.0 if mode == "random" else 1e-3)
    methods = dict(_methods(out))
    assert len(methods) == len(pairs) and None not in methods.values(), methods
    allowed = {"bootstrap", "wilson", "wilson_scaled", "wilson_precisions"}
    assert set(methods.values()) <= allowed, methods
    if mode != "random":
        expected = {"bleu": "wilson_precisions", "rouge": "wilson", "cider": "wilson_scaled", "meteor": "wilson"}
        for path, method in methods.items():
            kind = next((k for k in expected if path[-1].startswith(k)), None)
            if kind:
                assert method == expected[kind], (path, method)


Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def test_wilson_rules_by_hand_at_0_of_50_images():
    # Wilson upper bound of 0 of n: z^2 / (n + z^2); 0 of 50 at 95 %: 3.8415 / 53.8415 = 0.071348.
    upper = Z95**2 / (50 + Z95**2)
    assert upper == pytest.approx(3.8416 / 53.8416, abs=1e-5)
    metrics, protocol = imageclef_scores(["xyz"] * 50, [["abc"]] * 50, CaptionOptions())
    assert metrics["rouge_1"] == {"value": 0.0, "ci_low": 0.0, "ci_high": pytest.approx(upper, rel=1e-12),
                                  "n": 50, "ci_method": "wilson"}
    assert "Wilson" in protocol["ci"]
    coco, _ = coco_scores([f"zz{i}" for i in range(50)], [[f"lesion {i}"] for i in range(50)],
                          CaptionOptions(tokenizer="python", meteor=False))
    # CIDEr-D: a mean of per-image values in [0, 10], all 0: 10 x the Wilson upper bound.
    assert coco["cider_d"]["ci_method"] == "wilson_scaled"
    assert (coco["cider_d"]["ci_low"], coco["cider_d"]["ci_high"]) == (0.0, pytest.approx(10 * upper))
    # BLEU-1: precision 0 of 50 unigrams -> its Wilson bound over the 50 captions, times the observed
    # brevity penalty exp(1 - 100 / 50) (1 token per caption against 2).
    assert coco["bleu_1"]["ci_method"] == "wilson_precisions"
    assert coco["bleu_1"]["ci_high"] == pytest.approx(math.exp(1 - 100 / 50) * upper, rel=1e-9)
    assert coco["rouge_l"]["ci_high"] == pytest.approx(upper)


def test_bleu_wilson_ends_by_hand():
    # Orders 1..4: matches 6, 4, 2, 0 of guesses 8, 6, 4, 2; hypothesis 8 tokens, references 10; 2 captions.
    sums = np.array([6, 4, 2, 0, 8, 6, 4, 2, 8, 10], dtype=float)
    upper = Z95**2 / (2 + Z95**2)
    expected = math.exp(1 - 10 / 8) * (6 / 8 * 4 / 6 * 2 / 4 * upper) ** 0.25
    assert stats.bleu_wilson_ends(sums, 4, 4, 2) == (pytest.approx(expected, rel=1e-12),)
    assert stats.bleu_wilson_ends(sums, 3, 4, 2) == ()  # orders 1..3 vary in the bootstrap
    # Every order fully matched, no brevity penalty: the lower end is Wilson's n of n, n / (n + z^2).
    full = np.array([5, 4, 3, 2, 5, 4, 3, 2, 5, 5], dtype=float)
    assert stats.bleu_wilson_ends(full, 4, 4, 3) == (pytest.approx(3 / (3 + Z95**2), rel=1e-12),)
    # No hypothesis token at all: brevity penalty 0 is taken as 1, so the end is not 0 again.
    empty = np.array([0, 0, 3, 3, 0, 10], dtype=float)
    assert stats.bleu_wilson_ends(empty, 2, 2, 3) == (pytest.approx(Z95**2 / (3 + Z95**2)),)


def test_nltk_corpus_bleu_all_right_and_all_wrong_are_not_points():
    spec = ScoreSpec()
    wrong = intervals.nltk_bleu_summary(metrics.bleu_statistics([["xyz"]] * 50, [[["abc"]]] * 50, 4), 1, 4,
                                        0.0, spec, None)
    assert wrong == {"value": 0.0, "ci_low": 0.0, "ci_high": pytest.approx(Z95**2 / (50 + Z95**2)), "n": 50,
                     "ci_method": "wilson_precisions"}
    right = intervals.nltk_bleu_summary(metrics.bleu_statistics([["abc"]] * 50, [[["abc"]]] * 50, 4), 1, 4,
                                        1.0, spec, None)
    assert (right["ci_low"], right["ci_high"]) == (pytest.approx(50 / (50 + Z95**2)), 1.0)


def test_score_vqa_resamples_images_by_default_and_says_so(tmp_path):
    rng = np.random.default_rng(3)
    data, predictions = _random_vqa(rng, 60, "random")
    data.to_parquet(tmp_path / "d.parquet")
    predictions.to_parquet(tmp_path / "p.parquet")
    paths = (tmp_path / "d.parquet", tmp_path / "p.parquet", tmp_path / "m.json")
    by_image = score_vqa(*paths, ScoreSpec())
    by_question = score_vqa(*paths, ScoreSpec(bootstrap_unit="question"))
    assert "over images" in by_image["protocol"]["ci"] and "cluster bootstrap" in by_image["protocol"]["ci"]
    assert "over questions" in by_question["protocol"]["ci"] and "Wilson" in by_question["protocol"]["ci"]
    image_block = by_image["accuracy"]["exact_match"]["overall"]
    question_block = by_question["accuracy"]["exact_match"]["overall"]
    assert image_block["value"] == question_block["value"]
    assert (image_block["ci_low"], image_block["ci_high"]) != (question_block["ci_low"], question_block["ci_high"])
    # A split without image_id cannot be resampled by image: questions, and the JSON says why.
    data.drop(columns="image_id").to_parquet(tmp_path / "d.parquet")
    fallback = score_vqa(*paths, ScoreSpec())
    assert "the split has no image_id column" in fallback["protocol"]["ci"]
    assert fallback["accuracy"]["exact_match"]["overall"] == question_block


def test_image_bootstrap_is_fast_at_pathvqa_size():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 1000, size=6719)  # PathVQA test: 6,719 questions
    values = (rng.random(6719) < 0.6).astype(float)
    start = time.perf_counter()
    stats.mean_interval(values, 1000, 0, 0.95, images)
    assert time.perf_counter() - start < 5.0  # one count matrix: ~0.03 s here
