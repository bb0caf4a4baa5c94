"""The VQA protocol registry: each protocol reproduces its reference on crafted cases.

Expected values are derived by hand from the reference code, read at the commits recorded in
``medvqa.evaluate.protocols`` (LLaVA-Med ad758b6 / glossary 356ba55; MultiMedEval
task_families 12ab84b / utils e06fe64). Comments quote the reference line applied.
"""

import math

import numpy as np
import pytest

from medvqa.evaluate import protocols, reference_scores as rs
from medvqa.evaluate.vqa_eval_text import vqa_eval_normalise

NAN = math.nan


def _scores(name, preds, refs, kinds):
    return protocols.get(name).score(preds, refs, kinds)


# --- the shared normalisation (LLaVA-Med glossary.normalize_word == MultiMedEval clean_str) ---

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `if (p + " " in token or " " + p in token) or (re.search(comma_strip, token) != None)`:
        # a mark next to a space is deleted ...
        ("a - b", "b"),  # '-' deleted, then the article 'a' dropped
        # ... otherwise replaced by a space
        ("x-ray", "x ray"),
        ("(approx)", "approx"),
        # a digit,digit anywhere deletes every mark (no spaces inserted): "1,000 (approx)"
        ("1,000 (approx)", "1000 approx"),
        ("left/right", "left right"),
        # `period_strip = re.compile("(?!<=\d)(\.)(?!\d)")`: '.' kept only before a digit
        ("2.5 cm.", "2.5 cm"),
        # `period_strip.sub("", _token, re.UNICODE)`: re.UNICODE (32) is the count: 32 '.' go
        ("x" + "." * 40, "x" + "." * 8),
        # `manual_map`: number words to digits, 'none' to 0
        ("two lesions", "2 lesions"),
        ("none", "0"),
        # `articles`; `contractions` ("dont" -> "don't"); capitalised keys never match ("Im")
        ("the heart", "heart"),
        ("dont know", "don't know"),
        ("Im", "im"),
        # `token.replace(",", "")` at the end; ':' is not in the punctuation list
        ("answer: yes, left", "answer: yes left"),
        # no Unicode folding beyond lower()
        ("Ödem", "ödem"),
        ("   ", ""),
    ],
)
def test_vqa_eval_normalisation_quirks(text, expected):
    assert vqa_eval_normalise(text.lower()) == expected


# --- llava_med: llava/eval/run_eval.py @ ad758b6 with eval_metrics/evaluate_metrics.py ---

@pytest.mark.parametrize(
    ("pred", "ref", "hit"),
    [
        # `if 'yes' in pred_value or 'no' in pred_value: if gt_value in pred_value: hit`
        ("It is normal", "no", 1.0),  # 'no' inside 'normal' satisfies both tests
        ("not sure", "no", 1.0),  # 'no' inside 'not'
        ("yes or no", "no", 1.0),
        ("yes or no", "yes", 1.0),
        ("Yes.", "no", 0.0),
        ("The answer is: YES", "yes", 1.0),
        ("yes", "Yes ", 1.0),
        ("", "yes", 0.0),
        ("   ", "no", 0.0),
        # a closed non-yes/no question (VQA-RAD "left or right?"): needs 'yes'/'no' in the prediction
        ("left", "left", 0.0),
        ("no, left", "left", 1.0),
        ("cannot say, right", "right", 1.0),  # 'no' inside 'cannot'
    ],
)
def test_llava_med_closed_rule(pred, ref, hit):
    scored = _scores("llava_med", [pred], [ref], ["closed"])
    assert scored.per_question.tolist() == [hit]
    # The script computes F1/BLEU/exact on open questions only.
    assert all(math.isnan(v[0]) for k, v in scored.extras.items() if k != "closed_as_script")


def test_llava_med_closed_as_the_script_prints_it_drops_wrong_yes_no_answers():
    # run_eval.py @ ad758b6: `if 'yes' in pred_value or 'no' in pred_value: if gt_value in pred_value:
    # closed_scores['hit'].append(1)` / `else: closed_scores['hit'].append(0)` -- a yes/no prediction
    # that misses the reference appends nothing.
    preds = ["yes", "no", "maybe", "normal", "left"]
    refs = ["yes", "yes", "no", "yes", "left"]
    scored = _scores("llava_med", preds, refs, ["closed"] * 5)
    assert scored.per_question.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    as_script = scored.extras["closed_as_script"]
    assert np.isnan(as_script).tolist() == [False, True, False, True, False]
    assert np.nanmean(as_script) == pytest.approx(1 / 3)  # 1 hit over 3 appended entries


@pytest.mark.parametrize(
    ("pred", "ref", "recall", "precision", "exact"),
    [
        # calculate_f1score: `tp += candidate_words[word]` counts prediction repeats; `fn +=
        # reference_words[word]` for reference-only words; recall = tp / (tp + fn)
        ("lung lung lung", "left lung", 3 / 4, 1.0, 1 / 3),
        ("left lung", "lung lung", 1.0, 1 / 2, 1 / 2),
        ("two", "2", 1.0, 1.0, 1.0),  # manual_map
        ("x-ray", "x ray", 1.0, 1.0, 1.0),
        ("1,000 cells", "1000", 1.0, 1 / 2, 1 / 2),
        ("The heart.", "heart", 1.0, 1.0, 1.0),
        ("Ödem", "ödem", 1.0, 1.0, 1.0),
        ("肺", "肺", 1.0, 1.0, 1.0),
        # `if len(candidate_words) == 0: return 0, 0, 0`; calculate_exactmatch `if total == 0: return 0`
        ("", "liver", 0.0, 0.0, 0.0),
        ("   ", "liver", 0.0, 0.0, 0.0),
        ("spleen", "liver", 0.0, 0.0, 0.0),
    ],
)
def test_llava_med_open_recall_precision_exact(pred, ref, recall, precision, exact):
    scored = _scores("llava_med", [pred], [ref], ["open"])
    assert scored.per_question[0] == pytest.approx(recall)
    assert scored.extras["recall"][0] == pytest.approx(recall)
    assert scored.extras["precision"][0] == pytest.approx(precision)
    f1 = 0.0 if recall * precision == 0 else 2 * precision * recall / (precision + recall)
    assert scored.extras["f1"][0] == pytest.approx(f1)
    # calculate_exactmatch: distinct reference words found / number of prediction words
    assert scored.extras["exact"][0] == pytest.approx(exact)


def test_llava_med_bleu_columns_are_nltk_sentence_bleu_on_normalised_words():
    from nltk.translate.bleu_score import sentence_bleu

    scored = _scores("llava_med", ["lung lung lung", "left lung"], ["left lung", "left lung"], ["open", "open"])
    # weights=(1, 0, 0, 0): clipped unigram precision 1/3, no brevity penalty (3 > 2 words)
    assert scored.extras["bleu_1"][0] == pytest.approx(1 / 3)
    assert scored.extras["bleu_1"][1] == pytest.approx(1.0)
    # weights=(0, 1, 0, 0): no shared bigram -> nltk's unsmoothed value (~0)
    assert scored.extras["bleu_2"][0] == pytest.approx(0.0, abs=1e-300)
    assert scored.extras["bleu_2"][1] == pytest.approx(1.0)
    expected = sentence_bleu([["left", "lung"]], ["left", "lung"])  # default weights, as the script
    assert scored.extras["bleu"][1] == pytest.approx(expected)


def test_llava_med_mixed_split_and_lists_of_answers():
    preds = ["normal", "two", np.nan, None]
    refs = ["no", "2", "liver", "yes"]
    scored = _scores("llava_med", preds, refs, ["closed", "open", "open", "closed"])
    assert scored.per_question.tolist() == [1.0, 1.0, 0.0, 0.0]  # None/NaN predictions are ""
    assert np.isnan(scored.extras["f1"]).tolist() == [True, False, False, True]


# calculate_appearance_with_normalization (evaluate_metrics.py @ ad758b6), the script's
# 'open accuracy' row: similarity_candidate_prediction counts `for word in prediction: if word in
# candidate_answer` (distinct prediction words, split_sentence dicts) over `total =
# len(candidate_answer)` (distinct candidate words); `argmax(lst) = lst.index(max(lst))` takes the
# first maximum; `if final_prediction == reference: return 1.0`.
CANDIDATES = ("right lung", "left lung", "liver", 1, 2, "lung", "Left Upper Lobe")


@pytest.mark.parametrize(
    ("pred", "ref", "hit"),
    [
        ("the left lung", "left lung", 1.0),  # left lung 2/2 beats right lung 1/2
        ("lung", "left lung", 0.0),  # 'lung' 1/1 beats both 1/2: the answer is 'lung'
        ("left lung", "lung", 0.0),  # left lung 2/2 ties 'lung' 1/1: the first maximum wins
        ("right", "left lung", 0.0),  # right lung 1/2: a wrong candidate picked
        ("two", "2", 1.0),  # manual_map on the prediction; the int candidate 2 becomes "2"
        ("2", "two", 1.0),  # ... and on the reference
        ("", "right lung", 1.0),  # every similarity 0: the first candidate is the answer
        ("   ", "liver", 0.0),
        ("lung lung lung", "lung", 1.0),  # prediction words counted once
        ("left upper lobe", "left upper lobe", 1.0),  # the candidate is lower-cased by normalize_word
        ("spleen", "spleen", 0.0),  # a reference outside the candidates is never hit
    ],
)
def test_llava_med_open_accuracy_with_a_candidate_file(pred, ref, hit):
    candidates = rs.llava_med_candidates({"0": list(CANDIDATES)}, "test")
    scored = protocols.get("llava_med").score([pred, "yes"], [ref, "yes"], ["open", "closed"], candidates=candidates)
    assert scored.extras["open_accuracy"][0] == hit
    assert math.isnan(scored.extras["open_accuracy"][1])  # open questions only, as the script


def test_llava_med_open_accuracy_needs_candidates_and_other_protocols_ignore_them():
    assert "open_accuracy" not in _scores("llava_med", ["lung"], ["lung"], ["open"]).extras
    plain = protocols.get("exact_match").score(["lung"], ["lung"], ["open"], candidates=("liver",))
    assert plain.per_question.tolist() == [1.0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"0": []}, 'non-empty list under key "0"'),  # the script's argmax([]) would crash
        ({"1": ["lung"]}, 'non-empty list under key "0"'),
        ({"0": ["lung", 2.5]}, "candidate 1 is 2.5"),  # normalize_word(2.5) would crash
        ({"0": ["lung", None]}, "candidate 1 is None"),
    ],
)
def test_llava_med_candidate_file_errors_name_the_entry(raw, message):
    with pytest.raises(ValueError, match=message):
        rs.llava_med_candidates(raw, "cands.json")


def test_llava_med_candidate_file_as_a_bare_list():
    assert rs.llava_med_candidates(["lung", 3], "cands.json") == ("lung", "3")


def test_llava_med_tokens_is_the_whole_token_variant():
    scored = _scores("llava_med_tokens", ["It is normal", "lung lung lung", "two"], ["no", "left lung", "2"],
                     ["closed", "open", "open"])
    # no substring hit, multiset recall (1 of 2 reference words), no number words
    assert scored.per_question.tolist() == [0.0, 0.5, 0.0]


# --- multimedeval: multimedeval/task_families.py VQA.evaluate @ 12ab84b ---

@pytest.mark.parametrize(
    ("pred", "ref", "hit"),
    [
        # `if clean_correct in ["yes", "no"]`, `if correct_tokens == {"no"}: correct_tokens.add("not")`,
        # `if closed_q_recall >= 0.4`
        ("There is not any", "no", 1.0),  # 1 of {no, not} = 0.5 >= 0.4
        ("normal", "no", 0.0),  # word sets: no substring quirk
        ("yes or no", "yes", 1.0),
        ("yes", "no", 0.0),
        ("", "yes", 0.0),
        # open: `if recall[idx] >= 0.75`
        ("left lung", "left lung base", 0.0),  # 2/3
        ("right lung lobe", "right lower lung lobe", 1.0),  # 3/4
        ("two", "2", 1.0),
        ("lung lung lung", "left lung", 0.0),  # sets: recall 1/2
        ("left", "Left ", 1.0),  # get_correct_answer: answer.lower().strip()
    ],
)
def test_multimedeval_hits(pred, ref, hit):
    assert _scores("multimedeval", [pred], [ref], ["open"]).per_question.tolist() == [hit]


def test_multimedeval_closed_follows_its_reference_not_the_answer_type():
    # MultiMedEval decides closed by the reference answer; the data's answer_type is ignored.
    scored = _scores("multimedeval", ["yes, definitely", "left"], ["yes", "left"], ["open", "closed"])
    assert scored.per_question.tolist() == [1.0, 1.0]
    assert np.isnan(scored.extras["open_recall"]).tolist() == [True, False]


def test_multimedeval_f1_recall_on_word_sets():
    scored = _scores("multimedeval", ["lung lung lung", ""], ["left lung", "liver"], ["open", "open"])
    # precision = |{lung}| / |{lung}| = 1, recall = 1/2, F1 = 2pr / (p + r + 1e-8)
    assert scored.extras["recall"].tolist() == [0.5, 0.0]
    assert scored.extras["f1"][0] == pytest.approx(2 * 0.5 / (1.5 + 1e-8), rel=1e-12)
    assert scored.extras["f1"][1] == 0.0
    assert scored.extras["bleu_1"].tolist() == pytest.approx([1 / 3, 0.0])


@pytest.mark.parametrize(
    ("pred", "ref"),
    [("lung lung lung", "left lung"), ("left", "left lung base"), ("yes", "yes"), ("a b c", "d e"),
     ("right lower lobe", "right lobe")],
)
def test_multimedeval_bleu1_equals_torchmetrics(pred, ref):
    from torchmetrics.text import BLEUScore

    clean_pred, clean_ref = rs.multimedeval_inputs(pred, ref)
    expected = BLEUScore(n_gram=1)([clean_pred], [[clean_ref]]).item()
    assert rs.multimedeval_bleu1(pred, ref) == pytest.approx(expected, abs=1e-6)


# --- medgemma and exact_match ---

# The MedGemma report's text could not be read through the search tools (only its abstract), so
# these cases pin the rules the protocol states, not quotations of the report.

def test_medgemma_definitions():
    scored = _scores("medgemma", ["Yes.", "yes, there is", "the left lung apex"], ["yes", "yes", "left lung"],
                     ["closed", "closed", "open"])
    # closed: exact match after normalisation; open: token recall of the reference
    assert scored.per_question.tolist() == [1.0, 0.0, 1.0]
    # token F1: 'yes there is' vs 'yes' P=1/3 R=1 -> 0.5; 'left lung apex' vs 'left lung' -> 0.8
    assert scored.extras["token_f1"].tolist() == pytest.approx([1.0, 0.5, 0.8])


def test_medgemma_token_f1_is_multiset_and_covers_every_question():
    scored = _scores("medgemma", ["lung lung", "", "", "left"], ["lung", "", "left", "left lung"],
                     ["open", "open", "closed", "open"])
    # multiset overlap: 'lung lung' vs 'lung' shares one 'lung': P=1/2 R=1 -> 2/3; recall 1
    # both empty -> 1 (F1 and recall); only the prediction empty -> 0; 'left' vs 'left lung':
    # P=1 R=1/2 -> F1 2/3, recall 1/2
    assert scored.extras["token_f1"].tolist() == pytest.approx([2 / 3, 1.0, 0.0, 2 / 3])
    assert scored.per_question.tolist() == pytest.approx([1.0, 1.0, 0.0, 0.5])


def test_medgemma_says_its_definitions_are_not_verified():
    protocol = protocols.get("medgemma")
    assert protocol.reference.commit is None and "2507.05201" in protocol.reference.repository
    assert "NOT verified against the report text" in protocol.reference.files[0]
    assert "not verified against the report text" in protocol.rules
    footnote = protocol.footnote()
    assert "not verified against the report text" in footnote and "reproduces" not in footnote
    assert footnote.startswith("MedGemma (medgemma; meant to follow MedGemma Technical Report, arXiv:2507.05201 (")


def test_exact_match_protocol():
    scored = _scores("exact_match", ["The Liver.", "2.5cm", ""], ["liver", "2.5 cm", ""], ["open"] * 3)
    assert scored.per_question.tolist() == [1.0, 0.0, 1.0]


# --- the registry itself ---

def test_registry_entries_are_complete():
    for name, protocol in protocols.PROTOCOLS.items():
        assert protocol.name == name and protocol.label and len(protocol.rules) > 40
        if protocol.reference is not None and protocol.reference.commit is not None:
            assert len(protocol.reference.commit) == 40
        assert protocol.name in protocol.footnote() and protocol.rules in protocol.footnote()
    assert protocols.PROTOCOLS["llava_med"].reference.repository == "microsoft/LLaVA-Med"
    with pytest.raises(ValueError, match="unknown VQA protocol 'nope'; choose one of exact_match"):
        protocols.get("nope")
