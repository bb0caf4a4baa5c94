"""Baselines as rows of the results tables and bars of the comparison figure, the marker of a
model that does not beat the best baseline, the LaTeX width rule, and the figure fixes
(distinct styles, no empty or duplicated panels, attention colorbar, McNemar table)."""

import copy
import re

import numpy as np
import pandas as pd
import pytest

from medvqa.evaluate.compare import compare_models
from medvqa.report.attention import CMAP, AttentionInputs, plot_attention_maps
from medvqa.report.bars import plot_model_comparison
from medvqa.report.collect import Run
from medvqa.report.curves import plot_training_curves
from medvqa.report.figures import PALETTE, run_styles
from medvqa.report.formats import LATEX_COLUMN_PADDING, LATEX_LINE_CHARS, latex_parts
from medvqa.report.mcnemar import mcnemar_table
from medvqa.report.reliability import plot_reliability
from medvqa.report.spec import FigureSpec
from medvqa.report.tables import MARK, results_table

TOKEN_F1_LABEL = "Token F1 (%)"
BASELINES = ("baseline-majority", "baseline-question-only")
SPEC = FigureSpec(dpi=50)


def runs_of(info, keys=(("cnn", 0), ("cnn", 1), ("clip", 0), *((b, 0) for b in BASELINES))):
    return [Run(m, s, info["metrics"][(m, s)]) for m, s in keys]


def outputs(tmp_path, name="t"):
    return {fmt: tmp_path / f"{name}.{fmt}" for fmt in ("csv", "md", "tex", "html")}


def md_rows(text):
    """{first cell: [cells]} of a Markdown table."""
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return {row[0]: row for row in cells}


def em(metrics, kind="overall"):
    return metrics["accuracy"]["exact_match"][kind]["value"]


def test_baseline_rows_carry_the_same_metrics_and_intervals(results_tree, tmp_path):
    _, info = results_tree
    frame = results_table(runs_of(info), "vqa", "test", outputs(tmp_path))
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(csv["model"]) == ["cnn", "clip", *BASELINES]
    assert list(csv["kind"]) == ["model", "model", "baseline", "baseline"]
    for name in BASELINES:
        row = csv.set_index("model").loc[name]
        block = info["metrics"][(name, 0)]["accuracy"]["exact_match"]["overall"]
        assert (row["em_overall"], row["em_overall_ci_low"], row["em_overall_ci_high"]) == \
            (block["value"], block["ci_low"], block["ci_high"])
        assert block["ci_low"] < block["ci_high"]
    assert len(frame) == 4
    rows = md_rows((tmp_path / "t.md").read_text())
    majority = rows["Baseline: majority answer"]
    block = info["metrics"][("baseline-majority", 0)]["accuracy"]["exact_match"]["overall"]
    assert majority[3] == f"{100 * block['value']:.1f} [{100 * block['ci_low']:.1f}, {100 * block['ci_high']:.1f}]"
    assert "Baseline: question-only" in rows
    text = (tmp_path / "t.md").read_text()
    assert "Baselines (no training" in text and "the most frequent train answer" in text
    assert "\\midrule\nBaseline: majority answer" in (tmp_path / "t.tex").read_text()
    assert '<tr class="group"><td style="text-align:left">Baseline: majority answer' in (tmp_path / "t.html").read_text()


def test_caption_table_lists_both_caption_baselines(results_tree, tmp_path):
    _, info = results_tree
    keys = (("capm", 0), ("baseline-frequent-caption", 0), ("baseline-nearest-caption", 0))
    results_table(runs_of(info, keys), "cap", "test", outputs(tmp_path))
    rows = md_rows((tmp_path / "t.md").read_text())
    for label in ("Baseline: most frequent caption", "Baseline: nearest-neighbour caption"):
        assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", rows[label][3]), rows[label]  # BLEU-1 with its CI
    assert "16x16 grey" in (tmp_path / "t.md").read_text()


def test_marker_exactly_where_a_model_does_not_beat_the_best_baseline(results_tree, tmp_path):
    _, info = results_tree
    results_table(runs_of(info), "vqa", "test", outputs(tmp_path))
    rows = md_rows((tmp_path / "t.md").read_text())
    csv = pd.read_csv(tmp_path / "t.csv").set_index("model")
    best = max(em(info["metrics"][(b, 0)]) for b in BASELINES)
    cnn_mean = np.mean([em(info["metrics"][("cnn", s)]) for s in (0, 1)])
    clip = em(info["metrics"][("clip", 0)])
    # Hand check on EM all (column 3): one model above the best baseline, one not.
    assert cnn_mean > best >= clip
    assert MARK not in rows["cnn"][3] and rows["clip"][3].endswith(MARK)
    assert "em_overall" in csv.loc["clip", "below_baseline"].split(";")
    assert "em_overall" not in str(csv.loc["cnn", "below_baseline"]).split(";")
    # Every column: marked iff the model's value is not better than every baseline's.
    header = [line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("|")][0]
    position = {label: i for i, label in enumerate(c.strip() for c in header.strip("|").split(" | "))}
    for key, label, higher in (("em_closed", "EM closed (%)", True), ("em_open", "EM open (%)", True),
                               ("token_f1", TOKEN_F1_LABEL, True), ("brier", "Brier", False)):
        index = position[label]
        base = [csv.loc[b, key] for b in BASELINES]
        for model in ("cnn", "clip"):
            value = csv.loc[model, key]
            expected = value <= max(base) if higher else value >= min(base)
            assert rows[model][index].endswith(MARK) == expected, (model, key, header)
    for name in BASELINES:
        assert MARK not in " ".join(rows[f"Baseline: {'majority answer' if name.endswith('majority') else 'question-only'}"])
    assert not any(rows[m][position["ECE (%)"]].endswith(MARK) for m in ("cnn", "clip"))  # ECE is never compared


def test_a_tie_is_marked_and_without_baselines_nothing_is(results_tree, tmp_path):
    _, info = results_tree
    twin = Run("twin", 0, copy.deepcopy(info["metrics"][("baseline-question-only", 0)]))
    results_table([twin, *runs_of(info, [(b, 0) for b in BASELINES])], "vqa", "test", outputs(tmp_path, "tie"))
    row = md_rows((tmp_path / "tie.md").read_text())["twin"]
    assert row[3].endswith(MARK) and row[4].endswith(MARK)  # equal to the best baseline: not beating it
    results_table(runs_of(info, (("cnn", 0), ("clip", 0))), "vqa", "test", outputs(tmp_path, "plain"))
    text = (tmp_path / "plain.md").read_text()
    assert MARK not in text and "Baseline" not in text
    assert pd.read_csv(tmp_path / "plain.csv")["below_baseline"].isna().all()


def tex_parts(text):
    """[(header cells, body rows as cell lists)] of each tabular, with the LaTeX markup undone."""
    undo = {r"$\pm$": "±", "--": "–", r"\textsuperscript{\dag}": "†", r"\%": "%", r"\_": "_"}
    parts = []
    for body in re.findall(r"\\toprule\n(.*?)\\bottomrule", text, re.S):
        lines = [line.removesuffix(r" \\") for line in body.splitlines() if line.endswith(r"\\")]
        for old, new in undo.items():
            lines = [line.replace(old, new) for line in lines]
        cells = [line.split(" & ") for line in lines]
        parts.append((cells[0], cells[1:]))
    return parts


def test_latex_table_fits_the_line_by_splitting_columns(results_tree, tmp_path):
    _, info = results_tree
    results_table(runs_of(info), "vqa", "test", outputs(tmp_path))
    md_header = [c.strip() for c in (tmp_path / "t.md").read_text().splitlines()[2].strip("|").split(" | ")]
    parts = tex_parts((tmp_path / "t.tex").read_text())
    assert len(parts) >= 2  # 12 columns with "value [CI]" cells do not fit one line
    seen = []
    for header, rows in parts:
        assert header[0] == "Model" and len(rows) == 4
        width = sum(max(len(c) for c in column) + LATEX_COLUMN_PADDING for column in zip(header, *rows))
        assert width <= LATEX_LINE_CHARS or len(header) == 2, (header, width)
        seen += header[1:]
    assert ["Model", *seen] == md_header  # every column once, in order


def test_latex_parts_by_hand():
    header = ["key", "a", "b", "c"]
    rows = [["k" * 7, "1" * 10, "2" * 20, "3" * 5]]
    # widths with padding 3: key 10, a 13, b 23, c 8
    assert latex_parts(header, rows, 1, line_chars=46) == [[0, 1, 2], [0, 3]]
    assert latex_parts(header, rows, 1, line_chars=54) == [[0, 1, 2, 3]]
    assert latex_parts(header, rows, 1, line_chars=5) == [[0, 1], [0, 2], [0, 3]]  # one column per part at least


def test_twenty_models_get_distinct_colours_and_baselines_stay_grey():
    names = [f"m{i}" for i in range(45)] + list(BASELINES)
    styles = run_styles(names)
    colours = [styles[f"m{i}"]["color"] for i in range(20)]
    assert len(set(colours)) == 20
    assert len({(s["color"], s["hatch"]) for n, s in styles.items()}) == len(names)
    for name in BASELINES:
        r, g, b = (int(styles[name]["color"][i:i + 2], 16) for i in (1, 3, 5))
        assert r == g == b and styles[name]["hatch"] and styles[name]["color"] not in PALETTE
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE], dtype=float)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=2) + np.eye(len(PALETTE)) * 1e3
    assert distances.min() > 55


def test_comparison_bars_hold_baselines_markers_and_zero_bars(results_tree, tmp_path):
    _, info = results_tree
    fig = plot_model_comparison(runs_of(info), tmp_path / "b.png", tmp_path / "b.pdf", SPEC)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["cnn", "clip", "Baseline: majority answer", "Baseline: question-only", "best baseline",
                      "value not above best baseline"]
    expected = 0
    for kind in ("overall", "closed", "open"):
        best = max(em(info["metrics"][(b, 0)], kind) for b in BASELINES)
        cnn = np.mean([em(info["metrics"][("cnn", s)], kind) for s in (0, 1)])
        expected += (cnn <= best) + (em(info["metrics"][("clip", 0)], kind) <= best)
    marked = [t.get_text() for t in ax.texts if t.get_text().endswith(MARK)]
    assert expected >= 1 and len(marked) == expected
    # The majority answer is never right on open questions: a zero bar, outlined and labelled.
    assert em(info["metrics"][("baseline-majority", 0)], "open") == 0
    zero = [p for p in ax.patches if p.get_height() == 0]
    assert zero and all(p.get_linewidth() > 0 for p in zero)
    assert "0.0" in [t.get_text() for t in ax.texts]


def test_twenty_models_are_twenty_colours_in_the_figure(results_tree, tmp_path):
    _, info = results_tree
    runs = [Run(f"model-{i}", 0, info["metrics"][("clip", 0)]) for i in range(20)] + runs_of(info, [(BASELINES[0], 0)])
    fig = plot_model_comparison(runs, tmp_path / "b.png", tmp_path / "b.pdf", SPEC)
    handles = fig.axes[0].get_legend().legend_handles[:21]
    colours = {tuple(np.round(h.get_facecolor(), 3)) for h in handles}
    assert len(colours) == 21


def test_loss_only_history_draws_one_panel(tmp_path):
    pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [2.2, 1.5]}).to_csv(tmp_path / "h.csv")
    fig = plot_training_curves({"seed 0": tmp_path / "h.csv"}, tmp_path / "c.png", tmp_path / "c.pdf", SPEC)
    assert [ax.get_title() for ax in fig.axes] == ["loss"] and fig.axes[0].lines
    pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_accuracy": [0.4, 0.5]}).to_csv(tmp_path / "b.csv")
    both = plot_training_curves({"s": tmp_path / "b.csv"}, tmp_path / "d.png", tmp_path / "d.pdf", SPEC)
    assert [ax.get_title() for ax in both.axes] == ["loss", "accuracy"] and all(ax.lines for ax in both.axes)


def test_identical_calibration_sources_share_one_panel(results_tree, tmp_path):
    _, info = results_tree
    metrics = copy.deepcopy(info["metrics"][("cnn", 0)])
    metrics["calibration"]["answer_prob"] = copy.deepcopy(metrics["calibration"]["confidence"])
    fig = plot_reliability(metrics, tmp_path / "r.png", tmp_path / "r.pdf", SPEC)
    assert len(fig.axes) == 2  # one reliability panel and its counts, not two identical pairs
    assert fig.axes[0].get_title().startswith("model confidence = token-probability product")
    metrics["calibration"]["answer_prob"]["ece"] = 0.5
    assert len(plot_reliability(metrics, tmp_path / "s.png", tmp_path / "s.pdf", SPEC).axes) == 4


def test_attention_maps_use_viridis_with_a_colorbar(results_tree, tmp_path):
    root, _ = results_tree
    res, pred = root / "results", root / "results/predictions/vqa/cnn/0/test"
    images = res / "data/vqa/images_16.test"
    inputs = AttentionInputs(f"{pred}.attention.npy", f"{pred}.attention.ids.json", res / "data/vqa/test.parquet",
                             f"{pred}.parquet", f"{images}.npy", f"{images}.ids.json")
    fig = plot_attention_maps(inputs, tmp_path / "a.png", tmp_path / "a.pdf", SPEC)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "attention" in bars[0].get_ylabel()
    overlays = [im for ax in fig.axes if ax not in bars for im in ax.images[1:]]
    assert overlays and all(im.get_cmap().name == CMAP == "viridis" for im in overlays)


def test_mcnemar_table_for_the_report(results_tree, tmp_path):
    root, _ = results_tree
    runs = [["cnn", 0], ["cnn", 1], ["clip", 0]]
    preds = [root / f"results/predictions/vqa/{m}/{s}/test.parquet" for m, s in runs]
    result = compare_models(root / "results/data/vqa/test.parquet", runs, preds, tmp_path / "m.json", tmp_path / "m.csv")
    out = {fmt: tmp_path / f"mc.{fmt}" for fmt in ("md", "tex", "html")}
    mcnemar_table(tmp_path / "m.json", out, "vqa: McNemar")
    (pair,) = result["pairs"]
    row = md_rows(out["md"].read_text())["cnn"]
    assert row[:4] == ["cnn", "clip", "0", str(pair["n"])] and row[6:8] == [str(pair["b"]), str(pair["c"])]
    html = out["html"].read_text()
    assert "<th" in html and "Holm" in html and ">clip</td>" in html
