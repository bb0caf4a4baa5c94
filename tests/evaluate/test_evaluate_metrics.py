"""Answer protocols and BLEU / ROUGE against reference implementations and hand values."""

import numpy as np
import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from sklearn.metrics import accuracy_score

from medvqa.evaluate import metrics, protocols
from medvqa.evaluate.normalise import normalise


def test_exact_match_equals_sklearn_accuracy_on_normalised_strings():
    rng = np.random.default_rng(0)
    vocab = ["yes", "No", "left lung", "The Liver.", "ct", "MRI", "肺"]
    refs = list(rng.choice(vocab, 200))
    preds = list(rng.choice(vocab, 200))
    ours = metrics.exact_match(preds, refs).mean()
    assert ours == pytest.approx(accuracy_score([normalise(r) for r in refs], [normalise(p) for p in preds]))


def test_exact_match_all_correct_and_unicode():
    refs = ["Yes", "肺", "Ödem", "the heart"]
    preds = ["yes.", "肺", "ÖDEM", "Heart"]
    assert metrics.exact_match(preds, refs).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_llava_med_tokens_closed_uses_whole_word_containment():
    preds = ["yes, there is", "normal", "no", "it is not"]
    refs = ["yes", "no", "no", "no"]
    scores = protocols.llava_med_tokens_scores(preds, refs, ["closed"] * 4).per_question
    # "no" inside "normal" must not count; "not" is a different word from "no".
    assert scores.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_llava_med_tokens_open_is_reference_token_recall():
    preds = ["the left lung apex", "liver", ""]
    refs = ["left lung base", "right liver lobe", "spleen"]
    scores = protocols.llava_med_tokens_scores(preds, refs, ["open"] * 3).per_question
    assert scores == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_token_f1_hand_values():
    precision, recall = 1.0, 2 / 3
    assert metrics.token_f1(["left", "lung"], ["left", "lung", "base"]) == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    assert metrics.token_f1(["a", "a"], ["a"]) == pytest.approx(2 * 0.5 * 1 / 1.5)  # multiset overlap
    assert metrics.token_f1([], []) == 1.0
    assert metrics.token_f1(["x"], []) == 0.0
    assert metrics.token_f1(["x"], ["y"]) == 0.0


def _random_corpus(seed, n=60, refs_per_item=1, min_len=3):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(8)]
    hyps = [list(rng.choice(words, rng.integers(min_len, 15))) for _ in range(n)]
    refs = [[list(rng.choice(words, rng.integers(3, 15))) for _ in range(refs_per_item)] for _ in range(n)]
    return hyps, refs


@pytest.mark.parametrize("smoothing", ["none", "method1", "method4"])
def test_corpus_bleu_equals_nltk(smoothing):
    hyps, refs = _random_corpus(1, refs_per_item=2)
    ours = metrics.corpus_bleu(hyps, refs, 4, smoothing)
    smooth = None if smoothing == "none" else getattr(SmoothingFunction(), smoothing)
    for k, weights in metrics.BLEU_WEIGHTS.items():
        expected = corpus_bleu(refs, hyps, weights=weights, smoothing_function=smooth)
        assert ours[f"bleu_{k}"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("refs_per_item", [1, 3])
def test_corpus_bleu_equals_sacrebleu_on_the_same_tokens(refs_per_item):
    # Every hypothesis has >= 4 tokens: see the next test for shorter ones.
    hyps, refs = _random_corpus(2, refs_per_item=refs_per_item, min_len=4)
    ours = metrics.corpus_bleu(hyps, refs, 4, "none")
    streams = [[" ".join(item[j]) for item in refs] for j in range(refs_per_item)]
    for k in range(1, 5):
        bleu = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", max_ngram_order=k)
        expected = bleu.corpus_score([" ".join(h) for h in hyps], streams).score / 100
        assert ours[f"bleu_{k}"] == pytest.approx(expected, abs=1e-9)


def test_nltk_and_sacrebleu_differ_only_by_short_hypothesis_denominators():
    # nltk counts a hypothesis shorter than n as max(1, 0) = 1 n-gram; sacrebleu counts 0.
    hyps = [["a", "b", "c", "d", "e"], ["a", "b"]]
    refs = [[["a", "b", "c", "d", "f"]], [["a", "b"]]]
    ours = metrics.corpus_bleu(hyps, refs, 4, "none")["bleu_4"]
    sacre = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none").corpus_score(
        ["a b c d e", "a b"], [["a b c d f", "a b"]]
    )
    # Corpus precisions 6/7, 4/5, then 2/4 and 1/3 (nltk) versus 2/3 and 1/2 (sacrebleu); BP = 1.
    assert ours == pytest.approx((6 / 7 * 4 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert sacre.score / 100 == pytest.approx((6 / 7 * 4 / 5 * 2 / 3 * 1 / 2) ** 0.25)


def test_bleu_from_statistics_equals_nltk_corpus_bleu():
    hyps, refs = _random_corpus(3, n=40, refs_per_item=2)
    sums = metrics.bleu_statistics(hyps, refs, 4).sum(axis=0)
    nltk_scores = metrics.corpus_bleu(hyps, refs, 4, "none")
    for k in range(1, 5):
        assert metrics.bleu_from_statistics(sums, k, 4)[0] == pytest.approx(nltk_scores[f"bleu_{k}"], abs=1e-12)


def test_bleu_from_statistics_zero_when_no_match():
    sums = metrics.bleu_statistics([["a"]], [[["b"]]], 4).sum(axis=0)
    assert metrics.bleu_from_statistics(sums, 1, 4)[0] == 0.0


def test_sentence_bleu_equals_nltk_and_empty_corpus_is_nan():
    hyps, refs = _random_corpus(4, n=5)
    ours = metrics.sentence_bleu_scores(hyps, refs, 4, "method1")
    for i in range(5):
        smooth = SmoothingFunction().method1
        expected = sentence_bleu(refs[i], hyps[i], weights=(0.25,) * 4, smoothing_function=smooth)
        assert ours[i, 3] == pytest.approx(expected)
    assert metrics.sentence_bleu_scores([], [], 4).shape == (0, 4)
    assert np.isnan(metrics.corpus_bleu([], [], 4)["bleu_1"])


def test_unknown_smoothing_is_rejected():
    with pytest.raises(ValueError, match="method9"):
        metrics.smoothing_function("method9")


def test_rouge_l_hand_value_and_best_reference():
    # LCS("a b c d", "a c d e") = 3 -> P = R = 3/4.
    assert metrics.rouge_l_scores(["a b c d"], [["a c d e"]])[0] == pytest.approx(0.75)
    assert metrics.rouge_l_scores(["x y"], [["z", "x y"]])[0] == pytest.approx(1.0)
