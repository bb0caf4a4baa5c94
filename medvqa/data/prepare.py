"""Import and filter stages: a dataset source → unified, validated, filtered split parquet.

import_dataset:  source (demo | hf | slake | local) → results/data/{dataset}/source/{split}.parquet,
                 results/data/{dataset}/rejected.csv, results/data/{dataset}/source/meta.json
filter_split:    source/{split}.parquet → results/data/{dataset}/{split}.parquet
                 (question type, language, leakage, seeded subsample); with
                 filters.leakage: drop it also reads the source's leakage.json. When no
                 filter drops a row the split is a view of the source (``write_view``), not a copy.

Rows follow ``medvqa.data.schema``; bad rows fail the stage or, with on_bad_sample: skip, are
listed in rejected.csv. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medvqa.data import schema
from medvqa.data.batches import BATCH_ROWS, UnifiedRows
from medvqa.data.leakage import duplicated_images
from medvqa.data.sources import stream_source
from medvqa.io import (
    PARQUET_OPTIONS,
    atomic_path,
    atomic_symlink,
    parquet_batches,
    read_batches,
    read_json,
    write_csv,
    write_json,
)
from medvqa.paths import LEAKAGE_FILTERS, QUESTION_TYPES
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ImportSpec(Spec):
    source: str
    task: str = "vqa"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    on_bad_sample: str = "error"

    def validate(self, where: str) -> None:
        check_choice(where, "task", self.task, ("vqa", "caption"))
        check_choice(where, "on_bad_sample", self.on_bad_sample, ("error", "skip"))


@dataclasses.dataclass(frozen=True)
class FilterSpec(Spec):
    question_type: str = "all"  # all | closed | open: which questions a view keeps
    language: str = "en"  # q_lang code of the questions kept (e.g. en, zh; rows without q_lang stay), or all
    subsample: int | None = None  # keep at most this many rows per subsampled split (None: all)
    subsample_seed: int = 0  # seed of the subsample draw (pandas sample over sorted question ids)
    subsample_splits: tuple[str, ...] = ("train",)  # splits that are subsampled
    leakage: str = "keep"  # drop: val/test rows on images that duplicate a train image (leakage.json)

    def validate(self, where: str) -> None:
        check_choice(where, "question_type", self.question_type, QUESTION_TYPES)
        if self.language != "all" and not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", self.language):
            raise ConfigError(
                f"{where}: language={self.language!r} is not 'all' or a language code as the q_lang "
                f"column holds them (e.g. en, zh)"
            )
        check_choice(where, "leakage", self.leakage, LEAKAGE_FILTERS)
        if self.subsample is not None:
            check_range(where, "subsample", self.subsample, 1)
        for split in self.subsample_splits:
            check_choice(where, "subsample_splits", split, schema.SPLITS)


def import_dataset(
    spec: ImportSpec, dataset: str, split_paths: Mapping[str, str | Path], rejected_path: str | Path,
    meta_path: str | Path, batch_rows: int = BATCH_ROWS,
    loaders: Mapping[str, Callable[[Any, str], pd.DataFrame]] | None = None,
) -> dict[str, int]:
    """Load the source, validate every split, write one parquet per split; return row counts.

    Streams: each split is read, checked and written in batches of ``batch_rows`` source rows
    (one parquet row group each), so peak memory is one batch of images plus the row ids.
    ``loaders``: as ``medvqa.data.sources.load_source`` takes them (the demo's)."""
    rows = stream_source(spec.source, spec.options, dataset, spec.task, batch_rows, loaders)
    if rows.task != spec.task:
        raise ConfigError(
            f"datasets.{dataset}.task is {spec.task!r} but dataset {dataset!r} (source {spec.source!r}) "
            f"holds {rows.task} rows; set datasets.{dataset}.task: {rows.task}"
        )
    rejected, counts, taken = [], {}, {}
    for split, path in split_paths.items():
        good_ids, bad = _import_split(rows, dataset, split, path, spec, taken, batch_rows)
        if spec.task == "vqa":
            taken.update(dict.fromkeys(good_ids, split))
        rejected.append(bad)
        counts[split] = len(good_ids)
        log.info("%s/%s: %d rows kept, %d rejected", dataset, split, len(good_ids), len(bad))
    write_csv(pd.concat(rejected, ignore_index=True), rejected_path)
    meta = {"source": spec.source, "task": rows.task, "rows": counts, **rows.attrs}
    write_json(meta, meta_path)
    return counts


def _import_split(
    rows: UnifiedRows, dataset: str, split: str, path: str | Path, spec: ImportSpec,
    taken: Mapping[str, str], batch_rows: int,
) -> tuple[list[str], pd.DataFrame]:
    """Check and write one split batch by batch; (ids of the rows kept, rejected rows)."""
    id_col = "question_id" if rows.task == "vqa" else "image_id"
    seen: set[str] = set()
    image_reasons: dict[str, str | None] = {}
    good_ids, rejected = [], []
    # The rules the source applied (e.g. answer_type_rule) travel with the split file, so the
    # scoring stage can state whether closed/open came from the source or was inferred.
    with parquet_batches(path, rows.attrs) as writer:
        for batch in rows.batches(split, batch_rows):
            good, bad = schema.check_rows(
                batch, dataset, split, "skip", taken if spec.task == "vqa" else None, seen, image_reasons
            )
            rejected.append(bad)
            if len(good):
                writer.write(good)
                good_ids.extend(good[id_col].astype(str))
        empty = pd.DataFrame(columns=list(schema.REJECTED_COLUMNS))
        bad = pd.concat(rejected, ignore_index=True) if rejected else empty
        # Every bad row of the split is counted before failing, as for a split checked whole.
        if len(bad) and spec.on_bad_sample == "error":
            raise schema.bad_sample_error(bad, dataset, split, id_col)
        if not good_ids:
            raise schema.BadSampleError(f"dataset {dataset!r} split {split!r}: no usable rows")
    return good_ids, bad


def filter_rows(rows: pd.DataFrame, spec: FilterSpec, split: str, duplicated: frozenset = frozenset()) -> pd.DataFrame:
    """Apply the question-type, language, leakage and subsample filters to one split's rows;
    ``duplicated``: the split's image ids that duplicate a train image (leakage.json)."""
    return filter_steps(rows, spec, split, duplicated)[0]


def filter_steps(
    rows: pd.DataFrame, spec: FilterSpec, split: str, duplicated: frozenset = frozenset()
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``filter_rows`` and how many rows each filter dropped, in the order they apply
    ({"question_type": n, "language": n, "leakage": n, "subsample": n}; summary.json states them)."""
    dropped = dict.fromkeys(("question_type", "language", "leakage", "subsample"), 0)

    def keep(name: str, mask) -> pd.DataFrame:
        dropped[name] = int((~mask).sum())
        return rows[mask]

    if spec.question_type != "all" and "answer_type" in rows:
        rows = keep("question_type", rows["answer_type"] == spec.question_type)
    if spec.language != "all" and "q_lang" in rows:
        rows = keep("language", rows["q_lang"].isna() | (rows["q_lang"] == spec.language))
    if spec.leakage == "drop" and split != "train":
        rows = keep("leakage", ~rows["image_id"].astype(str).isin(duplicated))
    if spec.subsample is not None and split in spec.subsample_splits and len(rows) > spec.subsample:
        # Sampling the sorted ids (not the row order) keeps the subset stable when a
        # source reorders rows between versions.
        ids = rows["question_id" if "question_id" in rows else "image_id"]
        kept_ids = ids.sort_values().sample(n=spec.subsample, random_state=spec.subsample_seed)
        rows = keep("subsample", ids.isin(set(kept_ids)))
    return rows.reset_index(drop=True), dropped


def filter_split(
    spec: FilterSpec, dataset: str, split: str, source_path: str | Path, out_path: str | Path,
    leakage_path: str | Path | None = None, batch_rows: int = BATCH_ROWS,
) -> int:
    """Write the rows of one source split that pass the filters; returns their number.

    The filters are decided on the text columns. When they keep every row, ``out_path`` becomes
    a view of the source file (``write_view``: no second copy of the images). Otherwise the rows
    kept are copied from the source parquet record batch by record batch (images never all in
    memory), schema and attrs kept. (That copy re-stores the kept images: every reader of a split
    (image cache, training and captioning data, leakage audit, summary) reads the ``image``
    column from the split file itself, which a split of row references would make each join.)"""
    rows = schema.read_text_columns(source_path)
    duplicated = frozenset()
    if spec.leakage == "drop":
        if leakage_path is None:
            raise ValueError(f"dataset {dataset!r}: filters.leakage is drop but no leakage.json was given")
        duplicated = duplicated_images(read_json(leakage_path), split)
    kept = filter_rows(rows.assign(_row=np.arange(len(rows))), spec, split, duplicated)["_row"].to_numpy()
    if not len(kept):
        present = "; ".join(
            f"{column} values present: {', '.join(sorted(rows[column].dropna().astype(str).unique()))}"
            for column in ("answer_type", "q_lang") if column in rows
        )
        raise ValueError(
            f"dataset {dataset!r} split {split!r}: the filters {spec.to_dict()} (datasets.{dataset}.filters) "
            f"left no rows of {len(rows)}" + (f" ({present})" if present else "")
        )
    if len(kept) == len(rows):
        how = write_view(source_path, out_path)
        log.info("%s/%s: all %d rows pass the filters %s: %s to the source", dataset, split, len(rows),
                 spec.to_dict(), how)
        return len(kept)
    copy_rows(source_path, np.sort(kept), out_path, batch_rows)
    log.info("%s/%s: %d of %d rows after filters %s", dataset, split, len(kept), len(rows), spec.to_dict())
    return len(kept)


def write_view(source_path: str | Path, out_path: str | Path) -> str:
    """Make ``out_path`` show the file ``source_path`` without copying it; returns how:
    ``symlink`` (a relative symbolic link, placed atomically) or ``copy`` (a filesystem without
    symbolic links). Not a hard link: Snakemake touches every output after its job, and a hard
    link shares the source's inode, so the touch would make the source newer than the outputs
    made from it (the leakage audit, the summary) and those would rerun on every invocation.
    Snakemake dates a linked input by max(link, target) mtime and an output by the link's own,
    so a rebuilt source reruns the filter, and a re-placed view reruns what reads it. (A source
    rebuilt by ``import_dataset`` shows through the link until then: Snakemake reruns the filter
    in the same invocation, before any rule that reads the view.)"""
    try:
        atomic_symlink(source_path, out_path)
        return "symlink"
    except OSError as exc:  # no symbolic links (e.g. some network or FAT filesystems)
        log.info("%s: no symbolic link (%s); copying %s", out_path, exc, source_path)
    with atomic_path(out_path) as tmp_copy:
        shutil.copyfile(source_path, tmp_copy)
    return "copy"


def view_storage(split_path: str | Path, source_path: str | Path) -> str:
    """How the split file stores its rows: ``symlink`` (a view of ``source_path``) or ``copy``."""
    split_path = Path(split_path)
    if split_path.is_symlink() and split_path.resolve() == Path(source_path).resolve():
        return "symlink"
    return "copy"


def copy_rows(source_path: str | Path, rows: np.ndarray, out_path: str | Path, batch_rows: int = BATCH_ROWS) -> None:
    """Write the rows at the sorted positions ``rows`` of a parquet file to ``out_path``, in order,
    one row group per source record batch that keeps any (same schema and metadata)."""
    arrow_schema = pq.read_schema(source_path)
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, arrow_schema, **PARQUET_OPTIONS) as writer:
        start = 0
        for batch in read_batches(source_path, batch_rows=batch_rows):
            stop = start + batch.num_rows
            take = rows[np.searchsorted(rows, start):np.searchsorted(rows, stop)] - start
            if len(take):
                writer.write_batch(batch.take(pa.array(take)))
            start = stop
