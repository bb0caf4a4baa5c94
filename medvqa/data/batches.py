"""Unified rows batch by batch: the import stage's bounded-memory path (``medvqa.data.unify``
holds the steps; ``unify_rows`` applies them to one in-memory frame).

A source describes its raw rows as a ``RawRows``: the unified name → source column map, and
a function that yields raw pandas batches (the source's own columns + ``split`` already named
train / val / test / drop) for the splits and columns asked for. ``unify_stream`` turns that
into ``UnifiedRows``, whose ``batches(split, n)`` yields that split's unified rows in source
order, each batch of at most ``n`` raw rows: images are read only for the rows of the batch.

Passes over the source: one over the image id column (which splits exist; the train image ids
when val must be carved off train), then one per split. Memory: one batch of rows and images,
plus the train image ids and per-split counters; never the dataset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

import pandas as pd

from medvqa.data.unify import (
    SPLIT_TARGETS,
    finish_rows,
    number_questions,
    row_image_ids,
    select_rows,
    source_rules,
    unify_rows,
    val_images,
)

# Raw rows per batch: ~256 images of 40-200 kB in memory at once, a few copies each.
BATCH_ROWS = 256
# (batch_rows, splits to read, source columns to read; None = every mapped column) → raw batches
RawBatches = Callable[[int, Collection[str], Collection[str] | None], Iterator[pd.DataFrame]]


@dataclasses.dataclass(frozen=True)
class RawRows:
    """A source's raw rows, before ``unify``: how to read them in batches and how to map them."""

    columns: Mapping[str, str]                  # unified name → source column
    batches: RawBatches
    image_dir: Path | None = None
    val_fraction: float = 0.1
    val_seed: int = 0
    absolute_image_paths: bool = False
    attrs: Mapping[str, str] = dataclasses.field(default_factory=dict)  # rules the source applied


@dataclasses.dataclass(frozen=True)
class UnifiedRows:
    """All splits of a dataset as unified rows, read split by split in batches."""

    task: str                                   # vqa | caption
    attrs: Mapping[str, str]                    # rules applied (answer_type_rule, val_split_rule, ...)
    batches: Callable[[str, int], Iterator[pd.DataFrame]]  # (split, batch_rows) → unified rows


def frame_batches(frame: pd.DataFrame) -> RawBatches:
    """``RawBatches`` over an in-memory raw frame (sources whose tables hold paths, not images)."""

    def batches(n: int, splits: Collection[str], columns: Collection[str] | None) -> Iterator[pd.DataFrame]:
        rows = frame[frame["split"].isin(list(splits))]
        if columns is not None:
            rows = rows[[*dict.fromkeys([*columns, "split"])]]
        for start in range(0, len(rows), n):
            yield rows.iloc[start:start + n]

    return batches


def _scan(raw: RawRows, batch_rows: int) -> tuple[set[str], list[str]]:
    """(splits present, train image ids in first-seen order), reading only the image id column."""
    name = "image_id" if "image_id" in raw.columns else "image"
    present: set[str] = set()
    train: dict[str, None] = {}
    for chunk in raw.batches(batch_rows, SPLIT_TARGETS, [raw.columns[name]]):
        rows = select_rows(chunk, {name: raw.columns[name]})
        present.update(rows["split"])
        ids = row_image_ids(rows[rows["split"] == "train"], raw.image_dir, raw.absolute_image_paths)
        train.update(dict.fromkeys(ids))
    return present, list(train)


def unify_stream(raw: RawRows, dataset: str, batch_rows: int = BATCH_ROWS) -> UnifiedRows:
    """``raw`` as ``UnifiedRows``; the same rows, ids and rules as ``unify_rows`` on the whole frame."""
    present, train_ids = _scan(raw, batch_rows)
    attrs = source_rules(raw.columns)
    val_ids = None
    if "train" in present and "val" not in present:
        val_ids, attrs["val_split_rule"] = val_images(train_ids, raw.val_fraction, raw.val_seed)
    attrs.update(raw.attrs)

    def batches(split: str, n: int) -> Iterator[pd.DataFrame]:
        counters: dict[str, int] = {}
        # Rows carved into val are train rows of the source: read (and number) the train rows.
        read = {"train"} if val_ids is not None and split in ("train", "val") else {split}
        for chunk in raw.batches(n, read, None):
            rows = select_rows(chunk, raw.columns)
            number_questions(rows, dataset, counters)
            if val_ids is not None:
                ids = row_image_ids(rows, raw.image_dir, raw.absolute_image_paths)
                rows.loc[(rows["split"] == "train") & ids.isin(val_ids), "split"] = "val"
            rows = rows[rows["split"] == split].reset_index(drop=True)
            if len(rows):
                yield finish_rows(rows, raw.image_dir, raw.absolute_image_paths)

    task = "vqa" if "question" in raw.columns else "caption"
    return UnifiedRows(task, attrs, batches)


def unified_frame(unified: UnifiedRows, splits: Collection[str], batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """Every split of ``unified`` in one frame (train, val, test order), ``attrs`` set."""
    frames = [b for split in splits for b in unified.batches(split, batch_rows)]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows.attrs = dict(unified.attrs)
    return rows


def unify_raw(raw: RawRows, dataset: str) -> pd.DataFrame:
    """Every raw row of ``raw`` unified in one in-memory frame, in source order (``unify_rows``)."""
    frames = list(raw.batches(BATCH_ROWS, SPLIT_TARGETS, None))
    rows = unify_rows(
        pd.concat(frames, ignore_index=True), raw.columns, dataset=dataset, image_dir=raw.image_dir,
        val_fraction=raw.val_fraction, val_seed=raw.val_seed, absolute_image_paths=raw.absolute_image_paths,
    )
    rows.attrs = {**rows.attrs, **raw.attrs}
    return rows


def frame_as_unified(rows: pd.DataFrame) -> UnifiedRows:
    """Rows a source already produced unified (the generated demo) as ``UnifiedRows``."""

    def batches(split: str, n: int) -> Iterator[pd.DataFrame]:
        part = rows[rows["split"] == split].reset_index(drop=True)
        for start in range(0, len(part), n):
            yield part.iloc[start:start + n].reset_index(drop=True)

    task = "vqa" if "question" in rows.columns else "caption"
    return UnifiedRows(task, dict(rows.attrs), batches)
