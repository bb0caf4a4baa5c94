"""``local`` dataset source: your own parquet / csv / jsonl / json table(s) + an image folder.

Reads either one table with a split column (``path: rows.csv``) or one table per split
(``path: {train: train.jsonl, val: val.jsonl, test: test.jsonl}``). The image column holds
a path (relative ones resolve under ``image_dir`` and may not leave it; absolute ones are read
only with ``absolute_image_paths: true``) or the encoded bytes (parquet binary, or
a datasets {bytes, path} struct). Column names are configurable. This is also the source
for credentialed datasets (MIMIC-CXR, ImageCLEF VQA-Med) that no workflow may download.
Returns unified rows of every split (``medvqa.data.unify.unify_rows``), or describes them as
``RawRows`` for the import's batch-by-batch reading: parquet tables are read one row group at a
time, csv / json tables (image paths, not images) once.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from medvqa.data.batches import RawBatches, RawRows, unify_raw
from medvqa.data.schema import SPLITS
from medvqa.io import read_batches
from medvqa.data.unify import (
    UNIFIED_NAMES,
    SourceFileError,
    SourceNotFoundError,
    check_columns_option,
    check_split_names_option,
    resolve_columns,
    json_problem,
    reading,
    resolve_split_names,
)
from medvqa.spec import ConfigError, Spec, check_choice, check_range

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}


@dataclasses.dataclass(frozen=True)
class LocalSourceSpec(Spec):
    """Options of the ``local`` source (config ``datasets.<name>.options``)."""

    path: str | Mapping[str, str]              # one table, or {train|val|test: table}
    format: str = "auto"                       # auto (by suffix) | parquet | csv | jsonl | json
    image_dir: str | None = None               # base of relative image paths; None = table's folder
    # {unified name: source column} over the preset; null drops a preset column
    columns: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    split_column: str = "split"                # split column of a single table
    # {source split: train|val|test|drop} over the defaults (validation/valid/dev → val, ...)
    split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    val_fraction: float = 0.1                  # share of train images made val if no val split
    val_seed: int = 0                          # seed of that by-image split
    encoding: str = "utf-8"                    # text encoding of csv / json(l) tables
    absolute_image_paths: bool = False         # read absolute image paths (else: rejected)

    def validate(self, where: str) -> None:
        check_choice(where, "format", self.format, ("auto", *sorted(set(FORMATS.values()))))
        check_range(where, "val_fraction", self.val_fraction, 0.001, 0.9)
        check_columns_option(where, self.columns)
        check_split_names_option(where, self.split_names)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"{where}: encoding={self.encoding!r} is not a known text encoding") from None
        if isinstance(self.path, Mapping):
            for split in self.path:
                check_choice(where, "path key", split, SPLITS)

    def tables(self) -> dict[str | None, Path]:
        """Split (None = read it from ``split_column``) → table file."""
        if isinstance(self.path, Mapping):
            return {split: Path(p).expanduser() for split, p in self.path.items()}
        return {None: Path(self.path).expanduser()}


def _missing_message(dataset: str, missing: list[Path]) -> str:
    return (
        f"dataset {dataset!r} (source local): {', '.join(map(str, missing))} not found. A local "
        f"source reads files you obtained yourself: put the table(s) there or fix options.path. "
        f"Credentialed datasets must be downloaded by you after their data use agreement, e.g. "
        f"MIMIC-CXR-JPG from https://physionet.org/content/mimic-cxr-jpg/ (PhysioNet "
        f"credentialing) or ImageCLEF VQA-Med via https://www.imageclef.org/ registration, then "
        f"converted to a table with image paths under options.image_dir. Hub datasets load with "
        f"source: hf."
    )


def read_table(path: Path, fmt: str, encoding: str = "utf-8", dataset: str = "?") -> pd.DataFrame:
    """One table file as pandas; csv cells stay strings so ids such as '007' survive. Text that
    is not ``encoding`` or malformed JSON fails naming dataset, file and place."""
    fmt = _format(path, fmt)
    if fmt == "parquet":
        return pd.read_parquet(path)
    with reading(dataset, "local", path):
        if fmt == "csv":
            # keep_default_na=False: answers such as "None" or "NA" are real answers here.
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        if fmt in ("jsonl", "json"):
            text = path.read_text(encoding=encoding)
            try:
                # dtype=False for the same reason: ids and answers keep their written form.
                return pd.read_json(io.StringIO(text), lines=fmt == "jsonl", dtype=False)
            except ValueError:  # pandas' JSON parser names no line
                problem = json_problem(text, fmt == "jsonl")
                where = f"dataset {dataset!r} (source local): {path}"
                raise SourceFileError(f"{where}: invalid JSON at {problem}") from None
    raise ConfigError(f"{path}: cannot tell the table format from {path.suffix!r}; set options.format")


def _split_names(spec: LocalSourceSpec, path: Path, frame: pd.DataFrame | None, where: str) -> dict[str, str]:
    """Source split name → train | val | test | drop of a single table (read from its split column)."""
    names = list(frame.columns) if frame is not None else _parquet_columns(path)
    if spec.split_column not in names:
        raise ConfigError(
            f"{where}: {path} has no split column {spec.split_column!r} (columns: "
            f"{', '.join(map(str, names))}); set split_column, or give path as "
            f"{{train: ..., val: ..., test: ...}}"
        )
    if frame is not None:
        values = frame[spec.split_column]
    else:
        values = pq.read_table(path, columns=[spec.split_column]).column(0).to_pandas()
    return resolve_split_names(values.unique(), spec.split_names, where)


def _table_batches(path: Path, frame: pd.DataFrame | None, n: int, columns) -> Iterator[pd.DataFrame]:
    """A table in batches of ``n`` rows: parquet streamed by record batch, text tables sliced."""
    if frame is not None:
        frame = frame if columns is None else frame[list(columns)]
        yield from (frame.iloc[start:start + n] for start in range(0, len(frame), n))
        return
    for batch in read_batches(path, None if columns is None else list(columns), n):
        yield batch.to_pandas()


def _batches(spec: LocalSourceSpec, dataset: str, where: str) -> tuple[RawBatches, list[str]]:
    """``RawBatches`` over the table(s), and the columns of the first table."""
    tables = spec.tables()
    missing = [p for p in tables.values() if not p.is_file()]
    if missing:
        raise SourceNotFoundError(_missing_message(dataset, missing))
    # Text tables (csv / json) hold image paths and are small: read once. Parquet may hold the
    # image bytes: streamed by record batch.
    frames = {p: None if _format(p, spec.format) == "parquet" else read_table(p, spec.format, spec.encoding, dataset)
              for p in tables.values()}
    names = {split: _split_names(spec, p, frames[p], where) for split, p in tables.items() if split is None}

    def batches(n: int, wanted: Collection[str], columns: Collection[str] | None) -> Iterator[pd.DataFrame]:
        for split, path in tables.items():
            if split is not None and split not in wanted:
                continue
            extra = [spec.split_column] if split is None else []
            read = None if columns is None else [*dict.fromkeys([*columns, *extra])]
            for frame in _table_batches(path, frames[path], n, read):
                target = split if split is not None else frame[spec.split_column].astype(str).map(names[None])
                yield frame.assign(split=target)

    first = next(iter(tables.values()))
    columns = list(frames[first].columns) if frames[first] is not None else _parquet_columns(first)
    return batches, columns


def _parquet_columns(path: Path) -> list[str]:
    return [n for n in pq.read_schema(path).names if not n.startswith("__index_level_")]


def _format(path: Path, fmt: str) -> str:
    return FORMATS.get(path.suffix.lower(), "unknown") if fmt == "auto" else fmt


def local_raw_rows(spec: LocalSourceSpec, dataset: str) -> RawRows:
    """The local table(s)' raw rows, read in batches (``medvqa.data.batches``)."""
    where = f"datasets.{dataset}.options (local source)"
    batches, available = _batches(spec, dataset, where)
    identity = {name: name for name in UNIFIED_NAMES}
    columns = resolve_columns(identity, spec.columns, available, where)
    first_table = next(iter(spec.tables().values()))
    image_dir = Path(spec.image_dir).expanduser() if spec.image_dir else first_table.parent
    return RawRows(
        columns, batches, image_dir=image_dir,
        val_fraction=spec.val_fraction, val_seed=spec.val_seed, absolute_image_paths=spec.absolute_image_paths,
    )


def load_local(spec: LocalSourceSpec, dataset: str) -> pd.DataFrame:
    """All splits of local table(s) + image folder as unified rows, in memory."""
    return unify_raw(local_raw_rows(spec, dataset), dataset)
