"""Results and published tables: exact numbers from the metrics JSONs, well-formed formats, protocol notes."""

import copy
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from medvqa.evaluate.calibration import BINNING
from medvqa.evaluate.protocols import PROTOCOLS
from medvqa.evaluate.normalise import NORMALISATION
from medvqa.evaluate.score import CLOSED_RULE
from medvqa.report.collect import Run
from medvqa.report.formats import latex_escape
from medvqa.report.published import published_table
from medvqa.report.tables import results_table
from medvqa.spec import ConfigError

FORMATS = ("csv", "md", "tex", "html")


def outputs(tmp_path, name):
    return {fmt: tmp_path / f"{name}.{fmt}" for fmt in FORMATS}


def vqa_runs(info, keys=(("cnn", 0), ("cnn", 1), ("clip", 0))):
    return [Run(m, s, info["metrics"][(m, s)]) for m, s in keys]


def check_markdown(text, n_columns):
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) >= 3
    for line in table:
        assert line.endswith("|") and len(re.findall(r"(?<!\\)\|", line)) == n_columns + 1, line
    assert re.fullmatch(r"\|(:?---:?\|)+", table[1])
    assert "Notes:" in text


def check_latex(text, n_columns, key_columns=1):
    """One table float; its tabulars (a wide table is split, the key columns repeated in each
    part) together hold every column once, and every row has its part's column count."""
    unescaped = re.sub(r"\\[{}&%$#_]", "", text)
    assert unescaped.count("{") == unescaped.count("}")
    for env in ("table", "minipage"):
        assert text.count(rf"\begin{{{env}}}") == text.count(rf"\end{{{env}}}") == 1
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") >= 1
    parts = re.findall(r"\\begin\{tabular\}\{([lr]+)\}(.*?)\\end\{tabular\}", text, re.S)
    assert sum(len(spec) - key_columns for spec, _ in parts) == n_columns - key_columns
    for spec, body in parts:
        rows = [line for line in body.split(r"\toprule")[1].split(r"\bottomrule")[0].splitlines()
                if line.endswith(r"\\")]
        assert len(rows) >= 2
        for row in rows:
            assert len(re.findall(r"(?<!\\)&", row)) == len(spec) - 1, row


def test_single_seed_numbers_are_exact(results_tree, tmp_path):
    _, info = results_tree
    metrics = info["metrics"][("clip", 0)]
    frame = results_table(vqa_runs(info, [("clip", 0)]), "vqa", "test", outputs(tmp_path, "t"))
    csv = pd.read_csv(tmp_path / "t.csv").set_index("model")
    pairs = {"em_overall": ("exact_match", "overall"), "em_closed": ("exact_match", "closed"),
             "llava_med_open": ("llava_med", "open"), "token_f1": ("token_f1", "overall")}
    for key, (protocol, kind) in pairs.items():
        block = metrics["accuracy"][protocol][kind]
        for suffix, field in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
            assert csv.loc["clip", key + suffix] == block[field]
            assert frame.set_index("model").loc["clip", key + suffix] == block[field]
        assert np.isnan(csv.loc["clip", f"{key}_std"])
    assert csv.loc["clip", "ece"] == metrics["calibration"]["confidence"]["ece"]
    assert csv.loc["clip", "brier"] == metrics["calibration"]["confidence"]["brier"]
    assert csv.loc["clip", "bleu_1"] == metrics["bleu"]["sentence_mean"]["bleu_1"]["value"]
    assert csv.loc["clip", "n"] == 24 and csv.loc["clip", "confidence_source"] == "confidence"
    em = metrics["accuracy"]["exact_match"]["overall"]
    shown = f"{100 * em['value']:.1f} [{100 * em['ci_low']:.1f}, {100 * em['ci_high']:.1f}]"
    assert shown in (tmp_path / "t.md").read_text()


def test_several_seeds_give_mean_and_sample_std(results_tree, tmp_path):
    _, info = results_tree
    results_table(vqa_runs(info), "vqa", "test", outputs(tmp_path, "t"))
    csv = pd.read_csv(tmp_path / "t.csv").set_index("model")
    values = [info["metrics"][("cnn", s)]["accuracy"]["exact_match"]["closed"]["value"] for s in (0, 1)]
    assert csv.loc["cnn", "em_closed"] == float(np.mean(values))
    assert csv.loc["cnn", "em_closed_std"] == float(np.std(values, ddof=1))
    assert csv.loc["cnn", "n_seeds"] == 2 and csv.loc["cnn", "seeds"] == "0;1"
    assert list(csv.index) == ["cnn", "clip"]
    text = (tmp_path / "t.md").read_text()
    assert f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}" in text


def test_formats_are_well_formed_and_state_the_protocol(results_tree, tmp_path):
    _, info = results_tree
    results_table(vqa_runs(info), "vqa", "test", outputs(tmp_path, "t"))
    md, tex, html = ((tmp_path / f"t.{f}").read_text() for f in ("md", "tex", "html"))
    n_columns = 3 + 18  # 15 protocol columns of the registry, BLEU-1, ECE, Brier
    check_markdown(md, n_columns)
    check_latex(tex, n_columns)
    assert r"$\pm$" in tex and "±" not in tex
    assert html.count("<tr>") == 3 and "<ol>" in html
    for text in (md, html):
        flat = " ".join(text.split())
        for protocol_text in (CLOSED_RULE, NORMALISATION, PROTOCOLS["exact_match"].rules, BINNING.format(n_bins=15)):
            assert " ".join(protocol_text.split()).rstrip(".")[:80] in flat.replace("&#x27;", "'")
        assert "SmoothingFunction().method1" in flat and "BLEU-1 weights (1)" in flat
        assert "cnn: confidence" in flat and "clip: confidence" in flat
        # every protocol's footnote names its reference (repository and commit)
        assert "reproduces microsoft/LLaVA-Med llava/eval/run_eval.py" in flat
        assert PROTOCOLS["llava_med"].reference.commit in flat
    assert latex_escape(CLOSED_RULE)[:60] in " ".join(tex.split())


def test_caption_table(results_tree, tmp_path):
    _, info = results_tree
    metrics = info["metrics"][("capm", 0)]
    results_table([Run("capm", 0, metrics)], "cap", "test", outputs(tmp_path, "c"))
    csv = pd.read_csv(tmp_path / "c.csv").set_index("model")
    for k in range(1, 5):
        assert csv.loc["capm", f"bleu_{k}"] == metrics["bleu"]["corpus"][f"bleu_{k}"]["value"]
    assert csv.loc["capm", "rouge_l"] == metrics["rouge_l"]["value"]
    assert csv.loc["capm", "sacrebleu"] == metrics["sacrebleu"]["bleu_4"]
    assert np.isnan(csv.loc["capm", "embedding"])  # no encoder configured
    assert csv.loc["capm", "cider_d"] == metrics["coco"]["cider_d"]["value"]
    assert csv.loc["capm", "cider_d_ci_high"] == metrics["coco"]["cider_d"]["ci_high"]
    assert csv.loc["capm", "imageclef_rouge_1"] == metrics["imageclef"]["rouge_1"]["value"]
    assert np.isnan(csv.loc["capm", "meteor"])  # the fixture scores without METEOR
    md = (tmp_path / "c.md").read_text()
    # 7 metric columns before the caption protocols added COCO BLEU-4, METEOR, COCO ROUGE-L,
    # CIDEr-D and ImageCLEF ROUGE-1.
    check_markdown(md, 3 + 12)
    check_latex((tmp_path / "c.tex").read_text(), 3 + 12)
    assert "CIDEr-D" in md and "tylin/coco-caption" in md and "ImageCLEFmedical2023VCMI" in md
    assert "BLEU-4 weights (0.25, 0.25, 0.25, 0.25)" in md and "no smoothing" in md and "ROUGE-L" in md


def test_every_column_has_an_interval_and_several_seeds_a_t_interval(results_tree, tmp_path):
    _, info = results_tree
    results_table(vqa_runs(info), "vqa", "test", outputs(tmp_path, "t"))
    csv = pd.read_csv(tmp_path / "t.csv").set_index("model")
    calib = info["metrics"][("clip", 0)]["calibration"]["confidence"]
    for key in ("ece", "brier"):  # bare numbers take their CI from the section's "intervals"
        assert csv.loc["clip", f"{key}_ci_low"] == calib["intervals"][key]["ci_low"]
        assert csv.loc["clip", f"{key}_ci_low"] <= csv.loc["clip", key] <= csv.loc["clip", f"{key}_ci_high"]
    # Two seeds: the Student t interval of the two per-seed values, not the mean of their CI bounds.
    values = [info["metrics"][("cnn", s)]["accuracy"]["exact_match"]["closed"]["value"] for s in (0, 1)]
    half = student_t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
    assert csv.loc["cnn", "em_closed_ci_low"] == pytest.approx(np.mean(values) - half)
    assert csv.loc["cnn", "em_closed_ci_high"] == pytest.approx(np.mean(values) + half)
    assert "Student t interval" in (tmp_path / "t.md").read_text()
    cap = info["metrics"][("capm", 0)]
    results_table([Run("capm", 0, cap)], "cap", "test", outputs(tmp_path, "c"))
    csv = pd.read_csv(tmp_path / "c.csv").set_index("model")
    assert csv.loc["capm", "sacrebleu_ci_high"] == cap["sacrebleu"]["intervals"]["bleu_4"]["ci_high"]


def test_footnote_carries_the_split_fingerprint(results_tree, tmp_path):
    _, info = results_tree
    results_table(vqa_runs(info), "vqa", "test", outputs(tmp_path, "t"))
    short = info["metrics"][("cnn", 0)]["provenance"]["split"]["short"]
    assert len(short) == 12
    for fmt in ("md", "tex", "html"):
        assert f"Split fingerprint: {short}" in (tmp_path / f"t.{fmt}").read_text()
    other = copy.deepcopy(info["metrics"][("clip", 0)])
    other["provenance"]["split"]["sha256"] = "0" * 64  # the same split name, other contents
    runs = [Run("cnn", 0, info["metrics"][("cnn", 0)]), Run("clip", 0, other)]
    with pytest.raises(ValueError, match="different contents of the test split"):
        results_table(runs, "vqa", "test", outputs(tmp_path, "x"))


def test_different_protocols_in_one_table_fail(results_tree, tmp_path):
    _, info = results_tree
    changed = copy.deepcopy(info["metrics"][("clip", 0)])
    changed["protocol"]["closed_rule"] = "yes/no answers are closed"
    runs = [Run("cnn", 0, info["metrics"][("cnn", 0)]), Run("clip", 0, changed)]
    with pytest.raises(ValueError, match="different protocol"):
        results_table(runs, "vqa", "test", outputs(tmp_path, "t"))


def test_published_table_places_our_numbers_beside_theirs(results_tree, tmp_path):
    _, info = results_tree
    entries = [
        {"dataset": "vqa", "source": "LLaVA-Med (Li et al. 2023)", "protocol": "llava_med",
         "metric": "llava_med_open", "value": 64.75, "note": "open-set recall"},
        {"dataset": "vqa", "source": "Paper B", "protocol": "exact_match", "metric": "em_closed", "value": 83.1},
        {"dataset": "other", "source": "Paper C", "protocol": "exact_match", "metric": "em_closed", "value": 10.0},
        {"dataset": "vqa", "source": "Paper D", "protocol": "exact_match", "metric": "em_closed", "value": 9.0,
         "split": "val"},
    ]
    frame = published_table(entries, vqa_runs(info), "vqa", "test", outputs(tmp_path, "p"))
    csv = pd.read_csv(tmp_path / "p.csv")
    assert list(csv["metric"]) == ["em_closed"] * 3 + ["llava_med_open"] * 3  # our column order
    theirs = csv[csv["kind"] == "published"].set_index("source")
    assert theirs.loc["Paper B", "value"] == 83.1 and "Paper C" not in theirs.index
    ours = csv[(csv["kind"] == "ours") & (csv["metric"] == "llava_med_open")].set_index("source")
    clip_open = info["metrics"][("clip", 0)]["accuracy"]["llava_med"]["open"]["value"]
    assert ours.loc["medvqa: clip", "value"] == 100 * clip_open
    assert len(frame) == 6
    md = (tmp_path / "p.md").read_text()
    check_markdown(md, 4)
    check_latex((tmp_path / "p.tex").read_text(), 4)
    assert "open-set recall" in md and "LLaVA-Med open recall" in md and "copied as printed" in md
    # each row states its protocol and split; another split's number is not shown
    assert "protocol llava_med; test split" in md and "this project, protocol llava_med" in md
    assert "Paper D" not in md


def test_published_closed_number_beside_inferred_answer_types_is_flagged(results_tree, tmp_path):
    _, info = results_tree
    runs = []
    for run in vqa_runs(info):
        metrics = copy.deepcopy(run.metrics)
        metrics["protocol"]["answer_type_inferred"] = True
        runs.append(Run(run.model, run.seed, metrics))
    entries = [{"dataset": "vqa", "source": "P", "protocol": "llava_med", "metric": m, "value": 1.0}
               for m in ("llava_med_closed", "token_f1")]
    entries[1]["protocol"] = "token_f1"
    published_table(entries, runs, "vqa", "test", outputs(tmp_path, "p"))
    csv = pd.read_csv(tmp_path / "p.csv")
    ours = csv[csv["kind"] == "ours"].set_index("metric")["note"]
    assert ours["llava_med_closed"].str.contains("inferred from the answers").all()
    assert not ours["token_f1"].str.contains("inferred").any()  # overall numbers do not depend on it


def test_published_number_needs_the_protocol_of_its_metric(results_tree, tmp_path):
    _, info = results_tree
    entry = {"dataset": "vqa", "source": "X", "protocol": "exact_match", "metric": "llava_med_closed", "value": 1}
    with pytest.raises(ConfigError, match="protocol 'exact_match' cannot stand beside metric 'llava_med_closed', "
                                          "which this project computes under protocol 'llava_med'"):
        published_table([entry], vqa_runs(info), "vqa", "test", outputs(tmp_path, "p"))


def test_published_number_needs_our_runs_scored_under_the_registered_protocol(results_tree, tmp_path):
    _, info = results_tree
    old = copy.deepcopy(info["metrics"][("clip", 0)])
    old["protocol"]["accuracy"]["llava_med"] = "the whole-token rule of an older version"
    entry = {"dataset": "vqa", "source": "X", "protocol": "llava_med", "metric": "llava_med_closed", "value": 1}
    with pytest.raises(ValueError, match="clip seed 0 was not scored under protocol 'llava_med'"):
        published_table([entry], [Run("clip", 0, old)], "vqa", "test", outputs(tmp_path, "p"))


def test_published_entries_are_validated(results_tree, tmp_path):
    _, info = results_tree
    with pytest.raises(ConfigError, match="metric"):
        published_table([{"dataset": "vqa", "source": "X", "protocol": "exact_match", "metric": "open recall",
                          "value": 1}],
                        vqa_runs(info), "vqa", "test", outputs(tmp_path, "p"))
    with pytest.raises(ValueError, match="does not exist for vqa"):
        published_table([{"dataset": "vqa", "source": "X", "protocol": "medvqa", "metric": "rouge_l", "value": 1}],
                        vqa_runs(info), "vqa", "test", outputs(tmp_path, "p"))


def test_latex_escape():
    assert latex_escape("a_b & 50% #1 {x} ~ ^ \\ ±") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} $\pm$")
