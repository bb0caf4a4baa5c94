"""The scoring stage end to end on small parquet files: values, JSON layout, id errors, CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from medvqa.evaluate import calibration, metrics
from medvqa.evaluate.protocols import PROTOCOLS
from medvqa.evaluate.inputs import AlignmentError
from medvqa.evaluate.normalise import caption_tokens, normalise
from medvqa.evaluate.score import correctness, main, score_captions, score_vqa
from medvqa.evaluate.spec import ScoreSpec
from medvqa.evaluate.stats import mcnemar
from medvqa.spec import ConfigError

DATA = pd.DataFrame(
    {
        "question_id": [f"q{i}" for i in range(1, 9)],
        "image_id": ["i1"] * 8,
        "image": [b"not decoded by scoring"] * 8,
        "question": ["?"] * 8,
        "answer": ["yes", "no", "left lung", "liver", "no", "2.5 cm", "肺", "yes"],
        "answer_type": ["closed", "closed", "open", "open", "closed", "open", "open", "closed"],
        "split": ["test"] * 8,
        "modality": ["CT", "CT", "CT", "MRI", "MRI", "X-Ray", "CT", "X-Ray"],
    }
)
PREDICTIONS = pd.DataFrame(
    {
        "question_id": [f"q{i}" for i in range(1, 9)],
        "prediction": ["Yes", "yes", "the left lung", "liver and spleen", "normal", "2.5 cm.", "肺", "no, yes"],
        "confidence": [0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 1.0, 0.4],
    }
)
EXACT = [1, 0, 1, 0, 0, 1, 1, 0]
# LLaVA-Med's run_eval.py closed rule tests raw substrings, so "no" inside "normal" (q5) is a hit
# (llava/eval/run_eval.py @ ad758b6, closed branch); the whole-token variant does not count it.
LLAVA = [1, 0, 1, 1, 1, 1, 1, 1]
LLAVA_TOKENS = [1, 0, 1, 1, 0, 1, 1, 1]
TOKEN_F1 = [1, 0, 1, 0.5, 0, 1, 1, 2 / 3]


def protocol_text(metrics_json, name):
    return metrics_json["protocol"]["accuracy"][name]["rules"]


def _reject(constant):
    raise AssertionError(f"{constant} in metrics JSON")


def _write(tmp_path, data=DATA, predictions=PREDICTIONS):
    data.to_parquet(tmp_path / "test.parquet")
    predictions.to_parquet(tmp_path / "pred.parquet")
    return tmp_path / "test.parquet", tmp_path / "pred.parquet", tmp_path / "metrics" / "test.json"


def test_score_vqa_values_against_hand_and_references(tmp_path):
    shuffled = PREDICTIONS.sample(frac=1.0, random_state=0)  # order must not matter
    out = score_vqa(*_write(tmp_path, predictions=shuffled), ScoreSpec())
    acc = out["accuracy"]
    assert acc["exact_match"]["overall"]["value"] == pytest.approx(np.mean(EXACT))
    assert acc["exact_match"]["overall"]["value"] == pytest.approx(
        accuracy_score(DATA["answer"].map(normalise), PREDICTIONS["prediction"].map(normalise))
    )
    assert acc["exact_match"]["closed"]["value"] == pytest.approx(0.25)
    assert acc["exact_match"]["open"]["value"] == pytest.approx(0.75)
    assert acc["llava_med"]["overall"]["value"] == pytest.approx(np.mean(LLAVA))
    assert acc["llava_med"]["closed"]["value"] == pytest.approx(0.75)
    assert acc["llava_med_tokens"]["overall"]["value"] == pytest.approx(np.mean(LLAVA_TOKENS))
    assert acc["llava_med_tokens"]["closed"]["value"] == pytest.approx(0.5)
    assert acc["token_f1"]["overall"]["value"] == pytest.approx(np.mean(TOKEN_F1))
    assert acc["exact_match"]["by_modality"]["CT"]["value"] == pytest.approx(0.75)
    assert acc["exact_match"]["by_modality"]["CT"]["n"] == 4
    overall = acc["exact_match"]["overall"]
    assert overall["n"] == 8 and overall["ci_low"] <= overall["value"] <= overall["ci_high"]
    hyp = [normalise(p).split() for p in PREDICTIONS["prediction"]]
    ref = [[normalise(a).split()] for a in DATA["answer"]]
    assert out["bleu"]["corpus"]["bleu_1"]["value"] == pytest.approx(metrics.corpus_bleu(hyp, ref)["bleu_1"])
    calib = out["calibration"]["confidence"]
    conf = PREDICTIONS["confidence"].to_numpy()
    assert calib["ece"] == pytest.approx(calibration.expected_calibration_error(conf, np.array(EXACT), 15))
    assert calib["mean_confidence_wrong"] == pytest.approx(np.mean([0.8, 0.6, 0.5, 0.4]))


def test_score_vqa_json_layout_states_every_protocol(tmp_path):
    data, pred, out_json = _write(tmp_path)
    returned = score_vqa(data, pred, out_json, ScoreSpec())
    assert json.loads(out_json.read_text(), parse_constant=_reject) == returned  # strict JSON: no NaN
    sections = {
        "task", "n", "accuracy", "bleu", "embedding_similarity", "calibration", "protocol", "inputs", "spec",
        "provenance",
    }
    assert set(returned) == sections
    assert set(returned["accuracy"]) == set(PROTOCOLS)
    for name, entry in PROTOCOLS.items():
        assert protocol_text(returned, name) == entry.rules
    protocol = returned["protocol"]
    for key in ("normalisation", "closed_rule", "accuracy", "bleu", "calibration", "ci", "embedding_similarity"):
        assert protocol[key], key
    assert protocol["bleu"]["weights"]["bleu_2"] == [0.5, 0.5]
    assert "method1" in protocol["bleu"]["sentence_mean"]
    assert protocol["calibration"]["n_bins"] == 15
    # Sources that are absent are null, with the reason in the protocol.
    assert returned["calibration"]["sampled_agreement"] is None
    # A classifier's predictions have no token probabilities: no answer_prob source at all.
    assert "answer_prob" not in protocol["calibration"]["sources"]
    assert protocol["calibration"]["sources"]["confidence"] == calibration.SOFTMAX
    assert protocol["calibration"]["correctness_protocol"] == "exact_match"
    assert returned["embedding_similarity"] is None
    assert "no embedding_encoder" in protocol["embedding_similarity"]["reason"]
    assert returned["spec"]["bootstrap_resamples"] == 1000


def test_llava_med_candidate_file_adds_the_open_accuracy_row(tmp_path):
    """The candidate file reaches run_eval.py's 'open accuracy' (llava_med extra open_accuracy),
    and the metrics JSON names the file and its hash; without one the JSON says so."""
    import hashlib

    data, pred, out_json = _write(tmp_path)
    plain = score_vqa(data, pred, out_json, ScoreSpec())
    assert "open_accuracy" not in plain["accuracy"]["llava_med"]
    assert plain["protocol"]["llava_med_candidates"]["file"] is None
    candidates = tmp_path / "candidate.json"
    candidates.write_text(json.dumps({"0": ["right lung", "left lung", "liver", "2.5 cm", "肺"]}))
    # Open questions q3, q4, q6, q7: "the left lung" -> left lung (2/2), hit; "liver and spleen" ->
    # liver (1/1), hit; "2.5 cm." -> 2.5 cm, hit; "肺" -> 肺, hit.
    result = score_vqa(data, pred, tmp_path / "with.json", ScoreSpec(), candidates_path=candidates)
    row = result["accuracy"]["llava_med"]["open_accuracy"]
    assert (row["value"], row["n"]) == (1.0, 4)
    block = result["protocol"]["llava_med_candidates"]
    assert block["sha256"] == hashlib.sha256(candidates.read_bytes()).hexdigest() and block["answers"] == 5
    main(["--data", str(data), "--predictions", str(pred), "--out", str(tmp_path / "cli.json"),
          "--llava-med-candidates", str(candidates)])
    assert json.loads((tmp_path / "cli.json").read_text())["accuracy"]["llava_med"]["open_accuracy"]["n"] == 4
    candidates.write_text("{not json")
    with pytest.raises(ValueError, match="LLaVA-Med candidate file .*candidate.json"):
        score_vqa(data, pred, tmp_path / "bad.json", ScoreSpec(), candidates_path=candidates)


def test_generative_confidence_sources_each_reported(tmp_path):
    pred = PREDICTIONS.assign(
        confidence=np.nan,  # a generative model without a softmax over answers
        samples=[["yes", "yes"], ["no"], ["left lung"], [], ["normal", "no"], ["2.5 cm"], ["肺"], None],
        answer_prob=[0.9, np.nan, 0.7, 0.6, 0.5, 0.95, 1.0, 0.4],
    )
    out = score_vqa(*_write(tmp_path, predictions=pred), ScoreSpec())
    assert out["calibration"]["confidence"] is None
    agreement = out["calibration"]["sampled_agreement"]
    assert agreement["n"] == 6 and agreement["n_missing_confidence"] == 2
    assert agreement["mean_confidence"] == pytest.approx(np.mean([1, 0, 1, 0.5, 1, 1]))
    assert out["calibration"]["answer_prob"]["n"] == 7
    assert "null for every row" in out["protocol"]["calibration"]["sources"]["confidence"]


def test_generative_confidence_is_named_and_not_reported_twice(tmp_path):
    product = [0.9, 0.1, 0.7, 0.6, 0.5, 0.95, 1.0, 0.4]
    mean = [0.95, 0.3, 0.8, 0.7, 0.6, 0.97, 1.0, 0.6]
    pred = PREDICTIONS.assign(confidence=product, answer_prob=product, answer_prob_mean=mean)
    out = score_vqa(*_write(tmp_path, predictions=pred), ScoreSpec())
    sources = out["protocol"]["calibration"]["sources"]
    assert sources["confidence"] == calibration.TOKEN_PRODUCT
    assert sources["answer_prob_mean"] == calibration.TOKEN_MEAN
    assert "answer_prob" not in out["calibration"] and "answer_prob" not in sources
    assert out["calibration"]["answer_prob_mean"]["mean_confidence"] == pytest.approx(np.mean(mean))
    # confidence = the mean instead: the product is then the extra source.
    out = score_vqa(*_write(tmp_path, predictions=pred.assign(confidence=mean)), ScoreSpec())
    assert out["protocol"]["calibration"]["sources"]["confidence"] == calibration.TOKEN_MEAN
    assert set(out["calibration"]) == {"confidence", "answer_prob", "sampled_agreement"}


def test_calibration_correctness_follows_the_chosen_protocol(tmp_path):
    out = score_vqa(*_write(tmp_path), ScoreSpec(calibration_protocol="llava_med"))
    conf = PREDICTIONS["confidence"].to_numpy()
    assert out["calibration"]["confidence"]["accuracy"] == pytest.approx(np.mean(LLAVA))
    assert out["calibration"]["confidence"]["ece"] == pytest.approx(
        calibration.expected_calibration_error(conf, np.array(LLAVA), 15))
    assert "'llava_med'" in out["protocol"]["calibration"]["correctness"]
    with pytest.raises(ConfigError, match="calibration_protocol"):
        ScoreSpec.from_mapping({"calibration_protocol": "nope"}, where="evaluate")


def test_correctness_feeds_mcnemar_between_two_models(tmp_path):
    data, pred_a, _ = _write(tmp_path)
    pred_b = tmp_path / "pred_b.parquet"
    PREDICTIONS.assign(prediction=DATA["answer"].where(DATA["answer_type"] == "closed", "x")).to_parquet(pred_b)
    a, b = correctness(data, pred_a), correctness(data, pred_b)
    assert a.tolist() == [bool(x) for x in EXACT] and a.index.tolist() == b.index.tolist()
    # a right & b wrong: q3, q6, q7 (open); a wrong & b right: q2, q5, q8 (closed).
    result = mcnemar(a.to_numpy(), b.to_numpy())
    assert (result["b"], result["c"], result["p_value"]) == (3, 3, 1.0)


def test_all_correct(tmp_path):
    pred = pd.DataFrame({"question_id": DATA["question_id"], "prediction": DATA["answer"], "confidence": 1.0})
    out = score_vqa(*_write(tmp_path, predictions=pred), ScoreSpec())
    # 8/8 right: no bootstrap spread, so the Wilson score interval, whose lower bound at p = 1 is
    # n / (n + z^2) (z = 1.95996 for 95 %), instead of the collapsed [1, 1].
    wilson_low = 8 / (8 + 1.959963984540054**2)
    for protocol in ("exact_match", "llava_med", "llava_med_tokens", "token_f1", "multimedeval"):
        overall = out["accuracy"][protocol]["overall"]
        expected = {"value": 1.0, "ci_low": pytest.approx(wilson_low), "ci_high": 1.0, "n": 8, "ci_method": "wilson"}
        assert overall == expected
    assert out["calibration"]["confidence"]["ece"] == 0.0


def test_empty_split_gives_null_values_and_zero_counts(tmp_path):
    out = score_vqa(*_write(tmp_path, data=DATA.iloc[:0], predictions=PREDICTIONS.iloc[:0]), ScoreSpec())
    assert out["n"]["total"] == 0
    assert out["accuracy"]["exact_match"]["overall"] == {
        "value": None, "ci_low": None, "ci_high": None, "n": 0, "ci_method": "none",
    }
    assert out["bleu"]["corpus"]["bleu_1"]["value"] is None
    assert out["calibration"]["confidence"]["ece"] is None


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (PREDICTIONS[PREDICTIONS["question_id"] != "q5"], r"no prediction for question_id 'q5'"),
        (
            pd.concat([PREDICTIONS, PREDICTIONS.iloc[:1].assign(question_id="q99")]),
            r"not in the data split: 'q99'",
        ),
        (pd.concat([PREDICTIONS, PREDICTIONS.iloc[2:3]]), r"more than one prediction for question_id 'q3'"),
    ],
)
def test_id_mismatches_name_the_ids(tmp_path, predictions, message):
    with pytest.raises(AlignmentError, match=message):
        score_vqa(*_write(tmp_path, predictions=predictions), ScoreSpec())


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['prediction'\]"):
        score_vqa(*_write(tmp_path, predictions=PREDICTIONS.drop(columns="prediction")), ScoreSpec())
    with pytest.raises(ValueError, match="CLOSED"):
        score_vqa(*_write(tmp_path, data=DATA.assign(answer_type="CLOSED")), ScoreSpec())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_vqa(*_write(tmp_path, predictions=PREDICTIONS.assign(confidence=1.5)), ScoreSpec())


def test_null_prediction_counts_as_empty_answer(tmp_path):
    pred = PREDICTIONS.assign(prediction=[None, *PREDICTIONS["prediction"][1:]])
    out = score_vqa(*_write(tmp_path, predictions=pred), ScoreSpec())
    assert out["n"]["empty_predictions"] == 1
    assert out["accuracy"]["exact_match"]["overall"]["value"] == pytest.approx(3 / 8)


def test_spec_rejects_unknown_keys_and_too_few_resamples():
    with pytest.raises(ConfigError, match="n_bin"):
        ScoreSpec.from_mapping({"n_bin": 10})
    with pytest.raises(ConfigError, match="bootstrap_resamples"):
        ScoreSpec.from_mapping({"bootstrap_resamples": 100})
    with pytest.raises(ConfigError, match="bleu_smoothing"):
        ScoreSpec.from_mapping({"bleu_smoothing": "add-one"})
    assert ScoreSpec.from_mapping({"group_columns": ["organ"]}).group_columns == ("organ",)


CAPTIONS = pd.DataFrame(
    {
        "image_id": ["a", "b", "b", "c"],
        "image": [b""] * 4,
        "caption": [
            "Axial CT of the chest shows a mass in the left lung.",
            "Chest X-ray with cardiomegaly.",
            "Frontal radiograph showing an enlarged heart.",
            "MRI of the brain without contrast shows no lesion.",
        ],
        "split": ["test"] * 4,
    }
)
GENERATED = pd.DataFrame(
    {
        "image_id": ["c", "a", "b"],
        "generated": [
            "Brain MRI shows no lesion.",
            "Axial CT of the chest shows a left lung mass.",
            "Chest radiograph, enlarged heart.",
        ],
    }
)


def test_score_captions_values_and_references(tmp_path):
    CAPTIONS.to_parquet(tmp_path / "test.parquet")
    GENERATED.to_parquet(tmp_path / "gen.parquet")
    out = score_captions(tmp_path / "test.parquet", tmp_path / "gen.parquet", tmp_path / "m.json", ScoreSpec())
    assert out["n"] == {"total": 3, "references": 4, "empty_captions": 0}
    gen = dict(zip(GENERATED["image_id"], GENERATED["generated"]))
    hyps = [caption_tokens(gen[i]) for i in ("a", "b", "c")]
    ref_text = [[CAPTIONS["caption"][0]], list(CAPTIONS["caption"][1:3]), [CAPTIONS["caption"][3]]]
    refs = [[caption_tokens(c) for c in item] for item in ref_text]
    expected = metrics.corpus_bleu(hyps, refs, 4, "none")
    for k in range(1, 5):
        assert out["bleu"]["corpus"][f"bleu_{k}"]["value"] == pytest.approx(expected[f"bleu_{k}"])
    rouge = metrics.rouge_l_scores([gen[i] for i in ("a", "b", "c")], ref_text)
    assert out["rouge_l"]["value"] == pytest.approx(rouge.mean())
    signature = out["sacrebleu"]["signature"]
    assert signature.startswith("nrefs:var|case:lc") and "tok:13a" in signature  # image b has 2 references
    assert 0.0 <= out["sacrebleu"]["bleu_4"] <= 1.0
    assert out["embedding_similarity"] is None


def test_missing_generated_caption_names_the_image(tmp_path):
    CAPTIONS.to_parquet(tmp_path / "test.parquet")
    GENERATED.iloc[:2].to_parquet(tmp_path / "gen.parquet")
    with pytest.raises(AlignmentError, match="no generated caption for image_id 'b'"):
        score_captions(tmp_path / "test.parquet", tmp_path / "gen.parquet", tmp_path / "m.json", ScoreSpec())


def test_cli_main_and_module_entry_point(tmp_path):
    data, pred, out_json = _write(tmp_path)
    main(["--data", str(data), "--predictions", str(pred), "--out", str(out_json), "--spec", '{"n_bins": 10}'])
    assert json.loads(out_json.read_text())["protocol"]["calibration"]["n_bins"] == 10
    CAPTIONS.to_parquet(tmp_path / "cap.parquet")
    GENERATED.to_parquet(tmp_path / "gen.parquet")
    cap_json = tmp_path / "cap.json"
    subprocess.run(
        [sys.executable, "-m", "medvqa.evaluate.score", "--data", str(tmp_path / "cap.parquet"),
         "--predictions", str(tmp_path / "gen.parquet"), "--out", str(cap_json)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(cap_json.read_text())
    assert result["task"] == "caption" and not math.isnan(result["rouge_l"]["value"])


@pytest.mark.parametrize("source_typed", [True, False])
def test_closed_open_rule_of_the_data_stage_is_stated(tmp_path, source_typed):
    from medvqa.data.unify import CLOSED_RULE as INFERRED_RULE
    from medvqa.evaluate.score import INFERRED_MARK

    assert INFERRED_RULE.startswith(INFERRED_MARK)
    data = DATA.copy()
    data.attrs = {"answer_type_rule": "answer_type column of the source, lower-cased" if source_typed
                  else INFERRED_RULE}
    out = score_vqa(*_write(tmp_path, data=data), ScoreSpec())
    protocol = out["protocol"]
    assert protocol["answer_type_inferred"] is (not source_typed)
    expected = "taken from the source" if source_typed else "inferred from the answer by the data stage"
    assert protocol["closed_rule"].startswith(f"closed/open {expected}: ")
    assert protocol["closed_rule"].endswith(data.attrs["answer_type_rule"])
