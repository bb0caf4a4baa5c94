"""Caption protocols: PTB tokenisation, COCO BLEU/METEOR/ROUGE-L/CIDEr-D and ImageCLEF ROUGE-1.

Expected values come from pycocoevalcap's own scorers called directly on hand-tokenised
input, from the Stanford PTBTokenizer jar, and from hand derivations that cite the
reference's code.
"""

import math
import os

import numpy as np
import pandas as pd
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from medvqa.evaluate import captions, ptb
from medvqa.evaluate.captions import CaptionOptions, coco_scores, imageclef_scores, imageclef_text
from medvqa.evaluate.cider import CiderD
from medvqa.evaluate.score import score_captions
from medvqa.evaluate.spec import ScoreSpec
from medvqa.spec import ConfigError

# Hyphens, numbers, units ("5mm" / "5 mm"), decimals, punctuation, quotes, parentheses,
# slashes, unicode, contractions, abbreviations and empty captions (kept inside the list:
# pycocoevalcap's own wrapper loses trailing empty lines).
PTB_FIXTURE = [
    'A well-known 5mm lesion (arrow), at 3.5 cm; "quoted" text/slash — café naïve.',
    "CT scan: 5 mm nodule...",
    "",
    "The patient's left-sided mass isn't growing; it's 1,000 cells/mL & 50% smaller!",
    "X-ray [AP view] {note} shows 2.5x10^3 cells at T1-weighted MRI?",
    "e.g. Dr. Smith's case vs. the U.S. cohort, i.e. 3 p.m. on 12/05/2020.",
    "'single quotes' and `backticks' and ''double'' -- dash - hyphen",
    "Axial CT at the level of L4-L5 (white arrowheads) ; +/- 10 ° C",
    "Lesion measuring 2.3 × 1.8 cm with SUVmax = 12.4 (≥ 10) and #3 @ $5",
    "   ",
    "Non-contrast-enhanced CT–angiography showed a 3-cm mass, 4x5 mm.",
    "can't won't don't I'm you're we'll they'd",
    "End with abbreviation etc.",
    "Mr. A. B. Jones vs. Co. Inc. Ltd. No. 5 and Fig. 2 but fig. next",
    "A 45-year-old man with a 2-cm (0.8-inch) mass; see Fig. 2.",
    "Size 5 mm vs 5mm vs 5-mm vs 5.0mm vs 3.5cm.",
    "ÄÖÜ straße 東京 résumé and decomposed cafe\u0301 na\u0308ive",
    "pH 7.4, pO2 80 mmHg; HbA1c 6.5%.",
    "Arrow points to the lesion.The end",
    "val -5.5 and +3.2 and -x and 2.5-3.0 and v2.0, a ?? b ?! c",
    "https://example.org/x and patients' records and O'Brien's",
    "Two well-defined bright lesions in the left half of this sagittal MRI of the brain.",
    "It cannot be image_id or SLURM_* && ## **bold** BLEU-1..4 of configs/paper.yaml",
]


@pytest.fixture
def java():
    """The PTB-equality tests need the real JRE: skipped locally without java, failed in CI."""
    if not ptb.java_available():
        if os.environ.get("CI") == "true":
            pytest.fail("java is missing under CI=true: .ci/run must install default-jre-headless")
        pytest.skip("java not on PATH (CI installs it)")


def test_python_ptb_tokenisation_equals_stanford_ptbtokenizer(java):
    expected = ptb.java_ptb_tokens(PTB_FIXTURE)
    assert [ptb.python_ptb_tokens(c) for c in PTB_FIXTURE] == expected
    # Spot checks of the behaviour the fixture is there for.
    assert expected[0] == "a well-known 5mm lesion -lrb- arrow -rrb- at 3.5 cm quoted text/slash café naïve"
    assert expected[2] == "" and expected[9] == ""
    assert expected[15] == "size 5 mm vs 5mm vs 5-mm vs 5.0 mm vs 3.5 cm"


def test_project_java_call_equals_pycocoevalcap_ptbtokenizer(java):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    theirs = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(PTB_FIXTURE)})
    assert ptb.java_ptb_tokens(PTB_FIXTURE) == [theirs[i][0] for i in range(len(PTB_FIXTURE))]
    tokens, rule = ptb.ptb_tokenize(PTB_FIXTURE[:2], "auto")
    assert rule == ptb.JAVA_RULE and tokens[1] == "ct scan 5 mm nodule"


def test_trailing_empty_captions_keep_their_line():
    # pycocoevalcap's wrapper would drop these lines and misalign later images; ours must not.
    tokens, _ = ptb.ptb_tokenize(["A lesion.", "Line one\nline two\r\nthree", "", " "], "python")
    assert tokens == ["a lesion", "line one line two three", "", ""]
    if ptb.java_available():
        assert ptb.java_ptb_tokens(["A lesion.", "Line one\nline two\r\nthree", "", " "]) == tokens


def test_without_java_auto_falls_back_to_python_and_meteor_says_why(monkeypatch):
    monkeypatch.setattr(ptb, "java_available", lambda: False)
    monkeypatch.setattr(captions, "java_available", lambda: False)
    tokens, rule = ptb.ptb_tokenize(["A well-known lesion."], "auto")
    assert tokens == ["a well-known lesion"] and rule == ptb.PYTHON_RULE
    with pytest.raises(RuntimeError, match="needs a java executable"):
        ptb.ptb_tokenize(["x"], "java")
    metrics, rules = coco_scores(["a b"], [["a b"]], CaptionOptions())
    assert metrics["meteor"] is None and "no java executable" in rules["meteor"]
    assert rules["tokenizer"] == ptb.PYTHON_RULE


def test_unknown_tokenizer_is_named():
    with pytest.raises(ValueError, match="unknown PTB tokenizer 'spacy'"):
        ptb.ptb_tokenize(["x"], "spacy")


GEN = ["a man with a lesion in the left lung", "ct of the chest", "two round lesions", "mri of the brain"]
REFS = [
    ["a man with a lesion in the right lung", "lesion in the left lung"],
    ["ct scan of the chest"],
    ["two round lesions are visible", "two lesions"],
    ["mri of the knee"],
]
PYTHON = CaptionOptions(tokenizer="python", meteor=False)


def test_coco_bleu_rouge_cider_equal_pycocoevalcap_on_hand_tokenised_input():
    metrics, rules = coco_scores(GEN, REFS, PYTHON)
    gts, res = {i: r for i, r in enumerate(REFS)}, {i: [g] for i, g in enumerate(GEN)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(1, 5):
        assert metrics[f"bleu_{k}"]["value"] == pytest.approx(bleu[k - 1], rel=1e-12)
    assert metrics["rouge_l"]["value"] == pytest.approx(Rouge().compute_score(gts, res)[0], rel=1e-12)
    assert metrics["cider_d"]["value"] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-12)
    assert "pycocoevalcap" in rules["implementation"] and "beta = 1.2" in rules["rouge_l"]


def test_coco_bleu_statistic_reproduces_the_scorer_from_summed_counts():
    table = captions.bleu_table(GEN, REFS)
    bleu, _ = Bleu(4).compute_score({i: r for i, r in enumerate(REFS)}, {i: [g] for i, g in enumerate(GEN)}, 0)
    for k in range(1, 5):
        assert captions.coco_bleu(table.sum(axis=0), k)[0] == pytest.approx(bleu[k - 1], rel=1e-12)


def test_coco_bleu_by_hand():
    # pycocoevalcap 1.2 bleu/bleu_scorer.py lines 201-257 (tylin/coco-caption bfd1596, same code):
    # BLEU-1 = (correct + 1e-15) / (guess + 1e-9), brevity exp(1 - 1/ratio) with
    # ratio = (testlen + 1e-15) / (reflen + 1e-9) when < 1.
    # hyp "a b c" vs ref "a b d e": 2 of 3 unigrams match, lengths 3 vs 4.
    metrics, _ = coco_scores(["a b c"], [["a b d e"]], PYTHON)
    ratio = (3 + 1e-15) / (4 + 1e-9)
    expected = (2 + 1e-15) / (3 + 1e-9) * math.exp(1 - 1 / ratio)
    assert metrics["bleu_1"]["value"] == pytest.approx(expected, rel=1e-12)


def test_coco_rouge_l_beta_1_2_by_hand():
    # pycocoevalcap 1.2 rouge/rouge.py line 43 (beta = 1.2) and lines 60-72 (calc_score): max
    # precision and max recall over references, then F = (1 + 1.2^2) P R / (R + 1.2^2 P).
    # Image 1: "a b c d" vs "a c d e f": LCS 3, P = 3/4, R = 3/5.
    # Image 2: "x y" vs "x z" (LCS 1: P 1/2, R 1/2) and "y" (LCS 1: P 1/2, R 1): P = 1/2, R = 1.
    metrics, _ = coco_scores(["a b c d", "x y"], [["a c d e f"], ["x z", "y"]], PYTHON)
    b2 = 1.2**2
    first = (1 + b2) * 0.75 * 0.6 / (0.6 + b2 * 0.75)
    second = (1 + b2) * 0.5 * 1.0 / (1.0 + b2 * 0.5)
    assert first == pytest.approx(1.098 / 1.68) and second == pytest.approx(1.22 / 1.72)
    assert metrics["rouge_l"]["value"] == pytest.approx((first + second) / 2, rel=1e-12)


def test_cider_d_by_hand_consensus_idf():
    # pycocoevalcap 1.2 cider/cider_scorer.py line 124 (weight = tf * (log N - log max(1, df))),
    # line 162 (log N), line 178 (x10); tylin/coco-caption bfd1596 is the same. Two images,
    # each caption equal to its own single reference and different from the other: every n-gram has df = 1, so
    # the cosine is 1 for orders 1 and 2, 0 for orders 3 and 4 (no trigrams): mean 0.5, x10 = 5.
    metrics, _ = coco_scores(["a b", "c d"], [["a b"], ["c d"]], PYTHON)
    assert metrics["cider_d"]["value"] == pytest.approx(5.0)
    # The same perfect caption on both images: df = N = 2, every weight log 2 - log 2 = 0.
    metrics, _ = coco_scores(["a b", "a b"], [["a b"], ["a b"]], PYTHON)
    assert metrics["cider_d"]["value"] == 0.0


def test_cider_d_resample_recomputes_idf_as_pycocoevalcap_on_the_resampled_set():
    rng = np.random.default_rng(3)
    words = "a b c d lesion left right ct mri the of".split()

    def sentence():
        return " ".join(rng.choice(words, size=rng.integers(0, 9)))

    hyps = [sentence() for _ in range(25)]
    refs = [[sentence() for _ in range(rng.integers(1, 4))] for _ in range(25)]
    model = CiderD(hyps, refs)
    full = Cider().compute_score({i: refs[i] for i in range(25)}, {i: [hyps[i]] for i in range(25)})
    np.testing.assert_allclose(model.image_scores(np.ones((1, 25)))[:, 0], full[1], rtol=1e-12, atol=1e-15)
    for _ in range(3):
        drawn = rng.integers(0, 25, size=25)
        resampled = Cider().compute_score(
            {k: refs[i] for k, i in enumerate(drawn)}, {k: [hyps[i]] for k, i in enumerate(drawn)}
        )[0]
        counts = np.bincount(drawn, minlength=25)[None, :]
        assert model.corpus(counts)[0] == pytest.approx(resampled, rel=1e-12)


def test_coco_meteor_equals_pycocoevalcap_meteor(java):
    from pycocoevalcap.meteor.meteor import Meteor

    metrics, rules = coco_scores(GEN, REFS, CaptionOptions(tokenizer="python"))
    expected, _ = Meteor().compute_score({i: r for i, r in enumerate(REFS)}, {i: [g] for i, g in enumerate(GEN)})
    meteor = metrics["meteor"]
    assert meteor["value"] == pytest.approx(expected, rel=1e-12)
    assert meteor["ci_low"] <= meteor["value"] <= meteor["ci_high"]
    assert "summed per-image statistics" in rules["meteor"]


def test_meteor_statistic_of_the_whole_split_equals_the_jar_aggregate(java):
    # The jar's aggregate counts no chunk for a caption matched whole (fragmentation 0); summing the
    # per-image statistics as sent gave 0.565 for these all-right captions and 0.562 instead of 0.797
    # with one of 50 wrong, so the bootstrap distribution sat beside its own point.
    refs = [[f"the lesion {i} is here"] for i in range(50)]
    options = CaptionOptions(tokenizer="python")
    for hyps in ([r[0] for r in refs], ["the lesion 0 is"] + [r[0] for r in refs[1:]], [*GEN, *(r[0] for r in REFS)]):
        pairs = refs if len(hyps) == 50 else [*REFS, *REFS]
        value, statistic, _, _ = captions.meteor_block(hyps, pairs, options)
        assert statistic(np.ones((1, len(hyps))))[0] == pytest.approx(value, rel=1e-9)
    # All 50 right: every image scores 1, so every resample is 1 and the Wilson rule gives the interval.
    metrics, _ = coco_scores([r[0] for r in refs], refs, options)
    low = 50 / (50 + 1.959963984540054**2)
    assert metrics["meteor"] == {"value": 1.0, "ci_low": pytest.approx(low), "ci_high": 1.0, "n": 50,
                                 "ci_method": "wilson"}


def test_every_coco_number_has_an_image_level_interval():
    metrics, _ = coco_scores(GEN, REFS, PYTHON)
    for name in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"):
        summary = metrics[name]
        assert summary["n"] == 4
        assert summary["ci_low"] <= summary["value"] <= summary["ci_high"], name
        assert summary["ci_low"] < summary["ci_high"], name


def test_empty_split_gives_nulls():
    metrics, _ = coco_scores([], [], PYTHON)
    assert metrics["cider_d"]["n"] == 0 and math.isnan(metrics["cider_d"]["value"])
    assert math.isnan(imageclef_scores([], [], PYTHON)[0]["rouge_1"]["value"])


def test_imageclef_preprocessing_by_hand():
    # clef-caption-evaluation-2026 caption_prediction/evaluator.py (93e7320), preprocess_caption:
    # lower(), re.sub(r"\d+", "number"), then str.translate deleting string.punctuation.
    assert imageclef_text("CT 3.5 cm, (Left)") == "ct numbernumber cm left"
    assert imageclef_text("T2-weighted: 12mm") == "tnumberweighted numbermm"
    assert imageclef_text("Ünïcode – dash") == "ünïcode – dash"  # only ASCII punctuation is removed
    assert imageclef_text(None) == ""


def test_imageclef_rouge_1_by_hand():
    # "Lesion 5 mm." -> lesion number mm; "A lesion of 5mm" -> a lesion of numbermm:
    # 1 shared unigram, P = 1/3, R = 1/4, F = 2/7. compute_rouge (93e7320) scores `if
    # len(self.gt[image_key]) != 0 or len(candidate_pairs[image_key]) != 0` on the captions as
    # given, else 1: "..." vs "!" are scored (both empty after preprocessing: rouge-score F 0);
    # "" vs "" and a missing caption vs "" give 1; only the prediction empty -> 0.
    generated = ["Lesion 5 mm.", "...", "", None, ""]
    references = [["A lesion of 5mm"], ["!"], ["a lesion"], [""], [""]]
    metrics, rules = imageclef_scores(generated, references, PYTHON)
    assert captions.imageclef_rouge_1(generated, references).tolist() == pytest.approx([2 / 7, 0, 0, 1, 1])
    assert metrics["rouge_1"]["value"] == pytest.approx((2 / 7 + 0 + 0 + 1 + 1) / 5)
    assert captions.imageclef_rouge_1(["Lesion 5 mm."], [["A lesion of 5mm"]])[0] == pytest.approx(2 / 7)
    assert "number" in rules["preprocessing"]


CAPTION_DATA = pd.DataFrame(
    {
        "image_id": ["a", "b", "b", "c"],
        "image": [b"x"] * 4,
        "caption": [
            "A CT scan of the chest.", "Two well-defined lesions (arrows).", "Two lesions.", "MRI of the brain."
        ],
        "split": ["test"] * 4,
    }
)


def test_score_captions_writes_both_protocols_with_reference_and_rules(tmp_path):
    CAPTION_DATA.to_parquet(tmp_path / "test.parquet")
    generated = pd.DataFrame({"image_id": ["a", "b", "c"], "generated": ["CT of the chest", "two lesions", "x-ray"]})
    generated.to_parquet(tmp_path / "gen.parquet")
    spec = ScoreSpec(ptb_tokenizer="python", meteor=False)
    out = score_captions(tmp_path / "test.parquet", tmp_path / "gen.parquet", tmp_path / "m.json", spec)
    hyps = [ptb.python_ptb_tokens(g) for g in generated["generated"]]
    refs = [[ptb.python_ptb_tokens(c) for c in CAPTION_DATA["caption"][idx]] for idx in ([0], [1, 2], [3])]
    cider = Cider().compute_score({i: refs[i] for i in range(3)}, {i: [hyps[i]] for i in range(3)})[0]
    assert out["coco"]["cider_d"]["value"] == pytest.approx(cider, rel=1e-12)
    assert out["coco"]["meteor"] is None and out["imageclef"]["rouge_1"]["n"] == 3
    blocks = out["protocol"]["caption_protocols"]
    assert blocks["coco"]["reference"]["repository"] == "tylin/coco-caption"
    assert len(blocks["imageclef"]["reference"]["commit"]) == 40
    assert blocks["coco"]["rules"]["tokenizer"] == ptb.PYTHON_RULE
    assert "recomputed" in blocks["coco"]["rules"]["ci"]


def test_spec_rejects_unknown_caption_protocol_and_tokenizer():
    with pytest.raises(ConfigError, match="caption_protocols='spice'"):
        ScoreSpec.from_mapping({"caption_protocols": ["coco", "spice"]}, where="evaluate")
    with pytest.raises(ConfigError, match="ptb_tokenizer='nltk'"):
        ScoreSpec.from_mapping({"ptb_tokenizer": "nltk"}, where="evaluate")
    assert ScoreSpec.from_mapping({"caption_protocols": ["imageclef"]}, where="e").caption_protocols == ("imageclef",)
