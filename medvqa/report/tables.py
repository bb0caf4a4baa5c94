"""Results tables: every model's metrics JSONs of one dataset split → CSV, Markdown, LaTeX, HTML.

Reads ``results/metrics/{dataset}/{model}/{seed}/{split}.json`` of every (model, seed) and
writes ``results/tables/{dataset}/results.{split}.{csv,md,tex,html}``: models and then the
baselines (``medvqa.data.baselines``, scored like models) as rows, metrics as columns; a
model that does not beat the best baseline under a metric is marked (``MARK``) with a note. The CSV holds the exact JSON numbers as fractions (columns
``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``, ``<metric>_std``); the other formats
show percent with one decimal (Brier: a fraction) as "value [95% CI]" for one seed or
"mean ± std" for several, and end with a notes block stating the protocol, read from the
JSONs' ``protocol`` section (all models of a table must share it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from medvqa.data.baselines import BASELINE_RULES, is_baseline
from medvqa.evaluate.protocols import PROTOCOLS, footnote
from medvqa.evaluate.stats import SEED_INTERVAL
from medvqa.io import atomic_path, write_csv
from medvqa.report.collect import Cell, Run, by_model, confidence_source, summarise_seeds
from medvqa.report.formats import html_table, latex_table, markdown_table

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Column:
    key: str  # CSV column and the name a published entry refers to
    label: str
    path: tuple[str, ...]  # into the metrics JSON; "*" = the run's calibration source
    percent: bool = True  # shown x100 with 1 decimal, else as a fraction with 3 decimals
    higher_is_better: bool = True
    # Whether a model not beating the best baseline here is marked. Not for ECE: a constant
    # confidence equal to the base rate reaches near-zero ECE without any skill.
    vs_baseline: bool = True
    protocol: str | None = None  # protocol a published number must name; None: see protocol_of


def protocol_of(column: Column) -> str:
    """The protocol under which ``column`` is computed: the registry name of an accuracy column,
    else ``column.protocol`` or "medvqa" (this project's own BLEU / calibration definitions)."""
    if column.protocol is not None:
        return column.protocol
    return column.path[1] if column.path[0] == "accuracy" else OWN_PROTOCOL


OWN_PROTOCOL = "medvqa"
# Accuracy columns come from the protocol registry: each protocol lists its own.
PROTOCOL_COLUMNS = tuple(
    Column(key, label, ("accuracy", name, leaf))
    for name, protocol in PROTOCOLS.items()
    for key, label, leaf in protocol.columns
)
VQA_COLUMNS = (
    *PROTOCOL_COLUMNS,
    Column("bleu_1", "BLEU-1", ("bleu", "sentence_mean", "bleu_1")),
    Column("ece", "ECE", ("calibration", "*", "ece"), higher_is_better=False, vs_baseline=False),
    Column("brier", "Brier", ("calibration", "*", "brier"), percent=False, higher_is_better=False),
)
CAPTION_COLUMNS = (
    *(Column(f"bleu_{k}", f"BLEU-{k}", ("bleu", "corpus", f"bleu_{k}")) for k in range(1, 5)),
    Column("sacrebleu", "sacreBLEU", ("sacrebleu", "bleu_4")),
    Column("rouge_l", "ROUGE-L", ("rouge_l",)),
    Column("embedding", "Emb. sim.", ("embedding_similarity",)),
    # The caption protocols (medvqa.evaluate.captions); CIDEr-D x100 as COCO papers print it.
    Column("coco_bleu_4", "COCO BLEU-4", ("coco", "bleu_4")),
    Column("meteor", "METEOR", ("coco", "meteor")),
    Column("coco_rouge_l", "COCO ROUGE-L", ("coco", "rouge_l")),
    Column("cider_d", "CIDEr-D", ("coco", "cider_d")),
    Column("imageclef_rouge_1", "ImageCLEF ROUGE-1", ("imageclef", "rouge_1")),
)
COLUMNS = {"vqa": VQA_COLUMNS, "caption": CAPTION_COLUMNS}
MISSING = "–"
MARK = "†"  # a model that does not beat the best baseline under the column's metric
BASELINE_LABELS = {
    "baseline-majority": "Baseline: majority answer",
    "baseline-question-only": "Baseline: question-only",
    "baseline-frequent-caption": "Baseline: most frequent caption",
    "baseline-nearest-caption": "Baseline: nearest-neighbour caption",
}


def columns_for(task: str) -> tuple[Column, ...]:
    if task not in COLUMNS:
        raise ValueError(f"unknown task {task!r} in metrics JSON; expected one of {list(COLUMNS)}")
    return COLUMNS[task]


def format_cell(cell: Cell | None, column: Column) -> str:
    """'72.4 [68.1, 76.5]' (one seed), '72.4 ± 1.3' (several seeds), '72.4' (no CI) or '–'."""
    if cell is None or math.isnan(cell.value):
        return MISSING
    scale, fmt = (100.0, "{:.1f}") if column.percent else (1.0, "{:.3f}")
    text = fmt.format(scale * cell.value)
    if cell.n_seeds > 1 and not math.isnan(cell.std):
        return f"{text} ± {fmt.format(scale * cell.std)}"
    if not (math.isnan(cell.ci_low) or math.isnan(cell.ci_high)):
        return f"{text} [{fmt.format(scale * cell.ci_low)}, {fmt.format(scale * cell.ci_high)}]"
    return text


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def ordered_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs by model: the models in run order, then the baselines in run order."""
    groups = by_model(runs)
    return {m: groups[m] for m in sorted(groups, key=lambda m: is_baseline(m))}


def best_baselines(cells: Mapping[str, Mapping[str, Cell | None]], columns: Sequence[Column]) -> dict[str, float]:
    """Per column key compared with baselines: the best baseline value (point estimate)."""
    best = {}
    for c in columns:
        values = [cells[m][c.key].value for m in cells if is_baseline(m) and cells[m][c.key] is not None]
        values = [v for v in values if not math.isnan(v)]
        if c.vs_baseline and values:
            best[c.key] = max(values) if c.higher_is_better else min(values)
    return best


def below_baseline(model: str, cell: Cell | None, column: Column, best: Mapping[str, float]) -> bool:
    """A model's cell that does not beat the best baseline of its column (ties count as not beating)."""
    if is_baseline(model) or cell is None or math.isnan(cell.value) or column.key not in best:
        return False
    return cell.value <= best[column.key] if column.higher_is_better else cell.value >= best[column.key]


def _record(model: str, group: Sequence[Run], row_cells: Mapping[str, Cell | None], columns, best) -> dict:
    task = group[0].metrics.get("task", "vqa")
    record: dict[str, Any] = {
        "model": model,
        "kind": "baseline" if is_baseline(model) else "model",
        "n_seeds": len(group),
        "seeds": ";".join(str(r.seed) for r in group),
        "n": (group[0].metrics.get("n") or {}).get("total"),
    }
    if task == "vqa":
        record["confidence_source"] = confidence_source(group[0].metrics)
    record["below_baseline"] = ";".join(c.key for c in columns if below_baseline(model, row_cells[c.key], c, best))
    for c in columns:
        cell = row_cells[c.key]
        record[c.key] = math.nan if cell is None else cell.value
        record[f"{c.key}_ci_low"] = math.nan if cell is None else cell.ci_low
        record[f"{c.key}_ci_high"] = math.nan if cell is None else cell.ci_high
        record[f"{c.key}_std"] = math.nan if cell is None else _nan(cell.std)
    return record


def table_frame(runs: Sequence[Run]) -> tuple[pd.DataFrame, dict[str, dict[str, Cell | None]]]:
    """(the CSV frame: one row per model, then per baseline; the cells per row and column key).

    CSV columns: model, kind (model | baseline), n_seeds, seeds, n, [confidence_source],
    below_baseline (';'-joined keys of the columns where the model does not beat the best
    baseline), then per metric the value, CI bounds and std.
    """
    columns = columns_for(runs[0].metrics.get("task", "vqa"))
    groups = ordered_groups(runs)
    cells = {m: {c.key: summarise_seeds(group, c.path) for c in columns} for m, group in groups.items()}
    best = best_baselines(cells, columns)
    records = [_record(m, group, cells[m], columns, best) for m, group in groups.items()]
    return pd.DataFrame(records), cells


def _weights(bleu: Mapping[str, Any]) -> str:
    weights = bleu.get("weights", {})
    return "; ".join(f"{k.upper().replace('_', '-')} weights ({', '.join(f'{w:.3g}' for w in v)})"
                     for k, v in weights.items())


def vqa_notes(protocol: Mapping[str, Any]) -> list[str]:
    """Protocol notes of a VQA table (closed rule, normalisation, accuracy, BLEU, ECE)."""
    acc, bleu, calib = protocol.get("accuracy", {}), protocol.get("bleu", {}), protocol.get("calibration", {})
    metrics = calib.get("metrics", {})
    return [
        f"Closed vs open questions: {protocol.get('closed_rule')}.",
        f"Answer normalisation: {protocol.get('normalisation')}.",
        *(f"{footnote(name, block)}." for name, block in acc.items()),
        f"BLEU-1: {bleu.get('implementation')}, {bleu.get('sentence_mean')}; {_weights(bleu)}; "
        f"tokens: {bleu.get('tokenisation')}.",
        f"ECE: {metrics.get('ece')}; binning: {calib.get('binning')}. Brier: {metrics.get('brier')}. "
        f"Correctness for calibration: {calib.get('correctness')}.",
    ]


def caption_notes(protocol: Mapping[str, Any], signature: str | None) -> list[str]:
    """Protocol notes of a caption table (BLEU weights and smoothing, sacreBLEU, ROUGE-L, embeddings)."""
    bleu, emb = protocol.get("bleu", {}), protocol.get("embedding_similarity") or {}
    emb_text = emb.get("reason") or f"encoder {emb.get('encoder')}, {emb.get('pooling')}, {emb.get('references')}"
    return [
        f"BLEU-1..4: {bleu.get('implementation')}, {bleu.get('corpus')}; {_weights(bleu)}; "
        f"tokens: {bleu.get('tokenisation')}; {bleu.get('note')}.",
        f"sacreBLEU: {protocol.get('sacrebleu')}" + (f"; signature {signature}." if signature else "."),
        f"ROUGE-L: {protocol.get('rouge_l')}.",
        f"Embedding similarity: {emb_text}.",
        *caption_protocol_notes(protocol.get("caption_protocols") or {}),
    ]


def caption_protocol_notes(blocks: Mapping[str, Any]) -> list[str]:
    """One note per caption protocol: its label, reference (repository, file, commit) and rules."""
    notes = []
    for name, block in blocks.items():
        ref, rules = block.get("reference", {}), block.get("rules", {})
        rule_text = "; ".join(f"{key}: {text}" for key, text in rules.items())
        source = f"{ref.get('repository')} {ref.get('file')} at commit {ref.get('commit')}"
        if ref.get("note"):
            source += f" ({ref['note']})"
        notes.append(f"{block.get('label')} ({name}): reproduces {source}. {rule_text}.")
    return notes


def protocol_notes(run: Run) -> list[str]:
    """The protocol notes of one run (identical for every run of a well-formed table)."""
    protocol = run.metrics.get("protocol", {})
    if run.metrics.get("task", "vqa") == "caption":
        return caption_notes(protocol, (run.metrics.get("sacrebleu") or {}).get("signature"))
    return vqa_notes(protocol)


def shared_notes(runs: Sequence[Run]) -> list[str]:
    """Protocol notes shared by all runs; different protocols in one table are an error."""
    notes = protocol_notes(runs[0])
    for run in runs[1:]:
        if protocol_notes(run) != notes:
            raise ValueError(
                f"{run.model} seed {run.seed} was scored under a different protocol than "
                f"{runs[0].model} seed {runs[0].seed}; one table must use one protocol"
            )
    return notes


def value_note(runs: Sequence[Run], split: str) -> str:
    ci = runs[0].metrics.get("protocol", {}).get("ci", "bootstrap")
    vqa = runs[0].metrics.get("task", "vqa") == "vqa"
    return (
        f"Values are percent{' (Brier: a fraction)' if vqa else ''} on the {split} split; n = "
        f"{'questions' if vqa else 'images'} scored. One seed: value [95% CI], CI by {ci}. Several "
        f"seeds: mean ± sample standard deviation over seeds (CSV: also the interval {SEED_INTERVAL})."
    )


def split_note(runs: Sequence[Run], split: str) -> str | None:
    """The scored split's fingerprint (short sha256), so tables over different versions of a
    dataset cannot pass for one; runs scored on different contents of the split are an error."""
    prints = {(r.metrics.get("provenance") or {}).get("split", {}).get("sha256") for r in runs}
    if len(prints) > 1:
        raise ValueError(
            f"the runs of this table were scored on different contents of the {split} split: "
            f"split fingerprints {sorted(map(str, prints))}"
        )
    fingerprint = (runs[0].metrics.get("provenance") or {}).get("split")
    if not fingerprint:
        return None
    return (
        f"Split fingerprint: {fingerprint['short']} ({fingerprint['rows']} rows; sha256 of "
        f"{', '.join(fingerprint['fields'])})."
    )


def tidy(note: str) -> str:
    """A note without the doubled stop left where a quoted protocol sentence ends in one."""
    return re.sub(r"\.(?=[.;,](\s|$))", "", " ".join(note.split()))


def source_note(runs: Sequence[Run]) -> str | None:
    """Which calibration source ECE and Brier use for each model (VQA only)."""
    if runs[0].metrics.get("task", "vqa") != "vqa":
        return None
    parts = []
    for model, group in ordered_groups(runs).items():
        source = confidence_source(group[0].metrics)
        described = group[0].metrics.get("protocol", {}).get("calibration", {}).get("sources", {}).get(source)
        if is_baseline(model) and source:
            described = "the train share of the predicted answer, see the baselines note"
        parts.append(f"{model}: {source} ({described})" if source else f"{model}: none (no confidence column)")
    return "ECE and Brier confidence source per model: " + "; ".join(parts) + "."


def baseline_notes(runs: Sequence[Run]) -> list[str]:
    """What each baseline row is, and what the marker means (only when the table has baselines)."""
    baselines = [m for m in ordered_groups(runs) if is_baseline(m)]
    if not baselines:
        return []
    rules = "; ".join(f"{BASELINE_LABELS[m].removeprefix('Baseline: ')} ({m}): {BASELINE_RULES[m]}" for m in baselines)
    return [
        f"Baselines (no training, scored by the same stage as the models, with the same intervals): {rules}.",
        f"{MARK} marks a model value that does not beat the best baseline of its column (point estimates; "
        "ties count as not beating; higher is better except Brier). ECE is not compared: a constant "
        "confidence equal to the base rate reaches near-zero ECE without any skill.",
    ]


def table_notes(runs: Sequence[Run], split: str) -> list[str]:
    notes = [value_note(runs, split), split_note(runs, split), *shared_notes(runs), source_note(runs), *baseline_notes(runs)]
    return [tidy(n) for n in notes if n]


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_formats(
    header, rows, notes, title: str, label: str, outputs: Mapping[str, str | os.PathLike], align: str | None = None,
    separators: Sequence[int] = (), key_columns: int = 1,
) -> None:
    """Write the md / tex / html renderings named in ``outputs`` (a rule above each row index in
    ``separators``; ``key_columns`` repeated in each part of a split LaTeX table)."""
    write_text(markdown_table(header, rows, notes, title, align), outputs["md"])
    write_text(latex_table(header, rows, notes, title, label, align, separators, key_columns), outputs["tex"])
    write_text(html_table(header, rows, notes, title, align, separators), outputs["html"])


def row_label(model: str) -> str:
    return BASELINE_LABELS.get(model, model)


def marked_cell(model: str, cell: Cell | None, column: Column, best: Mapping[str, float]) -> str:
    text = format_cell(cell, column)
    return f"{text} {MARK}" if below_baseline(model, cell, column, best) else text


def results_table(
    runs: Sequence[Run], dataset: str, split: str, outputs: Mapping[str, str | os.PathLike]
) -> pd.DataFrame:
    """Write the results table of one dataset split to ``outputs`` {csv, md, tex, html}; return the CSV frame.

    Models come first, then the baselines (labelled "Baseline: ..."); a model cell that does not
    beat the best baseline of its column carries ``MARK``, explained in the notes.
    """
    if not runs:
        raise ValueError(f"no metrics to tabulate for {dataset}/{split}")
    frame, cells = table_frame(runs)
    columns = columns_for(runs[0].metrics.get("task", "vqa"))
    best = best_baselines(cells, columns)
    header = ["Model", "Seeds", "n", *(c.label + (" (%)" if c.percent else "") for c in columns)]
    rows = [
        [row_label(model), str(record["n_seeds"]), "" if record["n"] is None else str(record["n"]),
         *(marked_cell(model, cells[model][c.key], c, best) for c in columns)]
        for model, record in zip(cells, frame.to_dict("records"))
    ]
    first_baseline = [i for i, model in enumerate(cells) if is_baseline(model)][:1]
    write_csv(frame, outputs["csv"])
    title = f"{dataset}: results on the {split} split"
    write_formats(header, rows, table_notes(runs, split), title, f"tab:{dataset}-{split}", outputs,
                  separators=first_baseline)
    log.info("wrote results table of %d rows for %s/%s", len(rows), dataset, split)
    return frame
