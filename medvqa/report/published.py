"""Published-numbers table: this project's results beside numbers copied from papers.

Reads the config's ``report.published`` entries for one dataset and split (each names the
source, the protocol it was computed under, one of our table's metric keys, the split, the
value as printed in percent, optionally the dataset version, and a note) and the metrics
JSONs of every (model, seed); writes
``results/tables/{dataset}/published.{split}.{csv,md,tex,html}``. A published number is
shown only beside this project's number under the same protocol, metric and split: an
entry whose protocol is not the one its metric is computed under is rejected when the
config is checked (``PublishedEntry.validate``). For each metric, the published rows come
first, then one row per model of this project, in the same unit (percent; Brier: a
fraction). The notes state the protocol of our numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from medvqa.data.schema import SPLITS
from medvqa.evaluate.protocols import PROTOCOLS
from medvqa.io import write_csv
from medvqa.report.collect import Run, by_model, summarise_seeds
from medvqa.report.tables import COLUMNS, Column, format_cell, protocol_of, table_notes, write_formats
from medvqa.spec import ConfigError, Spec, check_choice

log = logging.getLogger(__name__)

METRIC_KEYS = tuple(dict.fromkeys(c.key for columns in COLUMNS.values() for c in columns))
# metric key -> the protocol it is computed under (first column with that key wins; keys are shared
# by VQA and caption tables only for BLEU, which is this project's own definition in both).
METRIC_PROTOCOL = {key: protocol_of(next(c for cs in COLUMNS.values() for c in cs if c.key == key))
                   for key in METRIC_KEYS}
CSV_COLUMNS = ("metric", "metric_label", "kind", "source", "value", "ci_low", "ci_high", "std", "n_seeds", "note")
CAVEAT = (
    "Published values are copied as printed in the cited sources. They may use other splits, "
    "answer normalisation, closed-question rules or metric definitions than ours; the note "
    "column says what the source calls its metric."
)


@dataclasses.dataclass(frozen=True)
class PublishedEntry(Spec):
    """One published number (an item of the config list ``report.published``)."""

    dataset: str  # a configured dataset
    source: str  # citation shown in the table, e.g. "LLaVA-Med (Li et al. 2023)"
    protocol: str  # the protocol the source computed its number under, e.g. llava_med
    metric: str  # one of METRIC_KEYS, e.g. llava_med_open for LLaVA-Med's open-question recall
    value: float  # as printed in the source (percent; Brier as a fraction)
    split: str = "test"
    dataset_version: str = ""  # e.g. "VQA-RAD official release (451 test questions)"
    note: str = ""  # what the source calls the metric, protocol differences

    def validate(self, where: str) -> None:
        check_choice(where, "metric", self.metric, METRIC_KEYS)
        check_choice(where, "split", self.split, SPLITS)
        if not self.source.strip():
            raise ConfigError(f"{where}: source must name the publication")
        ours = METRIC_PROTOCOL[self.metric]
        if self.protocol != ours:
            raise ConfigError(
                f"{where}: published protocol {self.protocol!r} cannot stand beside metric "
                f"{self.metric!r}, which this project computes under protocol {ours!r}"
            )


def parse_entries(entries: Sequence[Mapping[str, Any]]) -> list[PublishedEntry]:
    return [PublishedEntry.from_mapping(e, where=f"report.published[{i}]") for i, e in enumerate(entries)]


def _column(task: str, key: str) -> Column:
    for column in COLUMNS[task]:
        if column.key == key:
            return column
    raise ValueError(f"published metric {key!r} does not exist for {task} datasets; use one of "
                     f"{[c.key for c in COLUMNS[task]]}")


def _ours(column: Column, runs: Sequence[Run], split: str) -> list[dict[str, Any]]:
    scale = 100.0 if column.percent else 1.0
    rows = []
    for model, group in by_model(runs).items():
        cell = summarise_seeds(group, column.path)
        numbers = [math.nan] * 4
        if cell is not None:
            numbers = [scale * x for x in (cell.value, cell.ci_low, cell.ci_high, cell.std)]
        rows.append({
            "metric": column.key, "metric_label": column.label, "kind": "ours", "source": f"medvqa: {model}",
            "value": numbers[0], "ci_low": numbers[1], "ci_high": numbers[2], "std": numbers[3],
            "n_seeds": len(group),
            "note": f"this project, protocol {protocol_of(column)}, {len(group)} seed(s), {split} split"
                    + _subset_note(column, group),
            "text": format_cell(cell, column),
        })
    return rows


INFERRED_SUBSET = (
    "; closed/open inferred from the answers (yes/no), not the source's answer type, so this subset "
    "may differ from the publication's (the vqa_rad source reads the official types)"
)


def _subset_note(column: Column, runs: Sequence[Run]) -> str:
    """A warning when a closed/open number rests on answer types the data stage inferred."""
    if column.path[0] != "accuracy" or column.path[-1] not in ("closed", "open"):
        return ""
    inferred = any(r.metrics.get("protocol", {}).get("answer_type_inferred") for r in runs)
    return INFERRED_SUBSET if inferred else ""


def check_scored_under(runs: Sequence[Run], column: Column) -> None:
    """Every run's metrics JSON must state the registry's protocol of ``column`` (same reference),
    so a published number never stands beside a number computed under older or other rules."""
    if column.path[0] != "accuracy":
        return
    name = column.path[1]
    expected = json.loads(json.dumps(PROTOCOLS[name].describe()["reference"]))
    for run in runs:
        block = run.metrics.get("protocol", {}).get("accuracy", {}).get(name)
        if not isinstance(block, Mapping) or block.get("reference") != expected:
            raise ValueError(
                f"{run.model} seed {run.seed} was not scored under protocol {name!r} as registered "
                f"(reference {expected}); re-run its scoring before placing published numbers beside it"
            )


def _their_note(entry: PublishedEntry) -> str:
    parts = [f"protocol {entry.protocol}", f"{entry.split} split"]
    if entry.dataset_version:
        parts.append(entry.dataset_version)
    return "; ".join(parts + ([entry.note] if entry.note else []))


def _theirs(column: Column, entry: PublishedEntry) -> dict[str, Any]:
    return {
        "metric": column.key, "metric_label": column.label, "kind": "published", "source": entry.source,
        "value": float(entry.value), "ci_low": math.nan, "ci_high": math.nan, "std": math.nan,
        "n_seeds": None, "note": _their_note(entry), "text": f"{entry.value:g}",
    }


def published_rows(entries: Sequence[PublishedEntry], runs: Sequence[Run], dataset: str, split: str) -> list[dict]:
    """Rows of the table: per metric (in our column order) the published entries, then ours."""
    task = runs[0].metrics.get("task", "vqa")
    chosen = [e for e in entries if e.dataset == dataset and e.split == split]
    for entry in chosen:
        _column(task, entry.metric)  # a metric of the other task fails here, naming the allowed keys
    rows = []
    for column in COLUMNS[task]:
        if any(e.metric == column.key for e in chosen):
            check_scored_under(runs, column)
            rows += [_theirs(column, e) for e in chosen if e.metric == column.key]
            rows += _ours(column, runs, split)
    return rows


def published_table(
    entries: Sequence[Mapping[str, Any]],
    runs: Sequence[Run],
    dataset: str,
    split: str,
    outputs: Mapping[str, str | os.PathLike],
) -> pd.DataFrame:
    """Write the published-numbers table to ``outputs`` {csv, md, tex, html}; return the CSV frame."""
    if not runs:
        raise ValueError(f"no metrics of this project for {dataset}/{split}")
    rows = published_rows(parse_entries(entries), runs, dataset, split)
    frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    write_csv(frame, outputs["csv"])
    header = ["Metric", "Source", "Value", "Note"]
    text_rows = [[r["metric_label"], r["source"], r["text"], r["note"]] for r in rows]
    notes = [CAVEAT, *table_notes(runs, split)]
    title = f"{dataset}: this project beside published results ({split} split)"
    write_formats(header, text_rows, notes, title, f"tab:{dataset}-{split}-published", outputs, align="llrl")
    log.info("wrote %d rows of published comparison for %s/%s", len(rows), dataset, split)
    return frame
