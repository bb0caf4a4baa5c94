"""Published-numbers table: this project's results beside numbers copied from papers.

Reads the config's ``report.published`` entries for one dataset and split (each names the
source, one of our table's metric keys, the value as printed in percent and an optional
note, e.g. what the paper calls the metric) and the metrics JSONs of every (model, seed);
writes ``results/tables/{dataset}/published.{split}.{csv,md,tex,html}``. For each metric,
the published rows come first, then one row per model of this project, in the same unit
(percent; Brier: a fraction). The notes state the protocol of our numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from medvqa.data.schema import SPLITS
from medvqa.io import write_csv
from medvqa.report.collect import Run, by_model, summarise_seeds
from medvqa.report.tables import COLUMNS, Column, format_cell, table_notes, write_formats
from medvqa.spec import ConfigError, Spec, check_choice

log = logging.getLogger(__name__)

METRIC_KEYS = tuple(dict.fromkeys(c.key for columns in COLUMNS.values() for c in columns))
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
    metric: str  # one of METRIC_KEYS, e.g. llava_med_open for LLaVA-Med's open-question recall
    value: float  # as printed in the source (percent; Brier as a fraction)
    split: str = "test"
    note: str = ""  # what the source calls the metric, protocol differences

    def validate(self, where: str) -> None:
        check_choice(where, "metric", self.metric, METRIC_KEYS)
        check_choice(where, "split", self.split, SPLITS)
        if not self.source.strip():
            raise ConfigError(f"{where}: source must name the publication")


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
            "n_seeds": len(group), "note": f"this project, {len(group)} seed(s), {split} split",
            "text": format_cell(cell, column),
        })
    return rows


def _theirs(column: Column, entry: PublishedEntry) -> dict[str, Any]:
    return {
        "metric": column.key, "metric_label": column.label, "kind": "published", "source": entry.source,
        "value": float(entry.value), "ci_low": math.nan, "ci_high": math.nan, "std": math.nan,
        "n_seeds": None, "note": entry.note, "text": f"{entry.value:g}",
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
