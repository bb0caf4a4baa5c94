"""``local`` dataset source: your own parquet / csv / jsonl / json table(s) + an image folder.

Reads either one table with a split column (``path: rows.csv``) or one table per split
(``path: {train: train.jsonl, val: val.jsonl, test: test.jsonl}``). The image column holds
a path (relative ones resolve under ``image_dir`` and may not leave it; absolute ones are read
only with ``absolute_image_paths: true``) or the encoded bytes (parquet binary, or
a datasets {bytes, path} struct). Column names are configurable. This is also the source
for credentialed datasets (MIMIC-CXR, ImageCLEF VQA-Med) that no workflow may download.
Returns unified rows of every split (``medvqa.data.unify.unify_rows``).
"""

from __future__ import annotations

import codecs
import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from medvqa.data.schema import SPLITS
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
    unify_rows,
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
    fmt = FORMATS.get(path.suffix.lower(), "unknown") if fmt == "auto" else fmt
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


def _raw_frame(spec: LocalSourceSpec, dataset: str, where: str) -> pd.DataFrame:
    tables = spec.tables()
    missing = [p for p in tables.values() if not p.is_file()]
    if missing:
        raise SourceNotFoundError(_missing_message(dataset, missing))
    frames = []
    for split, path in tables.items():
        frame = read_table(path, spec.format, spec.encoding, dataset)
        if split is None:
            if spec.split_column not in frame.columns:
                raise ConfigError(
                    f"{where}: {path} has no split column {spec.split_column!r} (columns: "
                    f"{', '.join(map(str, frame.columns))}); set split_column, or give path as "
                    f"{{train: ..., val: ..., test: ...}}"
                )
            names = resolve_split_names(frame[spec.split_column].unique(), spec.split_names, where)
            split = frame[spec.split_column].astype(str).map(names)
        frames.append(frame.assign(split=split))
    return pd.concat(frames, ignore_index=True)


def load_local(spec: LocalSourceSpec, dataset: str) -> pd.DataFrame:
    """All splits of local table(s) + image folder as unified rows."""
    where = f"datasets.{dataset}.options (local source)"
    raw = _raw_frame(spec, dataset, where)
    identity = {name: name for name in UNIFIED_NAMES}
    columns = resolve_columns(identity, spec.columns, list(raw.columns), where)
    first_table = next(iter(spec.tables().values()))
    image_dir = Path(spec.image_dir).expanduser() if spec.image_dir else first_table.parent
    return unify_rows(
        raw, columns, dataset=dataset, image_dir=image_dir,
        val_fraction=spec.val_fraction, val_seed=spec.val_seed, absolute_image_paths=spec.absolute_image_paths,
    )
