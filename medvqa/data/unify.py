"""Shared steps that turn a source's raw table into unified rows (``medvqa.data.schema``).

Each real source (``hf``, ``slake``, ``local``) reads its files into a raw pandas frame that
holds the source's own column names plus a ``split`` column already named train/val/test
(or ``drop``), then calls ``unify_rows``: pick and rename columns, turn
image cells into encoded bytes, fill absent ids, derive ``answer_type``, and carve a
validation split off train by image when the source has none.

Nothing here rejects bad rows: a missing image file, or an image path outside the image folder
(absolute paths need ``absolute_image_paths``), becomes ``b""`` with the reason naming the path
in an ``image_problem`` column, and empty text stays empty, so ``schema.check_rows`` later names
the row and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from medvqa.data.answers import NORMALISATION, normalise_answer
from medvqa.data.schema import IMAGE_PROBLEM
from medvqa.spec import ConfigError

UNIFIED_NAMES = (
    "question_id", "image_id", "image", "question", "answer", "answer_type",
    "caption", "cui", "modality", "organ", "q_lang", "content_type",
)
TEXT_NAMES = ("question", "answer", "caption", "cui", "modality", "organ", "q_lang", "content_type")
ORDER = (
    "question_id", "image_id", "image", "question", "answer", "answer_type", "caption",
    "split", "modality", "organ", "q_lang", "content_type", "cui",
)
# Split names seen on the hub and in local releases; ``split_names`` options extend this.
DEFAULT_SPLIT_NAMES = {
    "train": "train", "training": "train",
    "validation": "val", "validate": "val", "valid": "val", "val": "val", "dev": "val",
    "test": "test", "testing": "test",
}
SPLIT_TARGETS = ("train", "val", "test", "drop")
CLOSED_RULE = (
    f"no answer-type column in the source: a question is closed when its answer, normalised "
    f"({NORMALISATION}), is 'yes' or 'no', and open otherwise"
)


class SourceNotFoundError(FileNotFoundError):
    """A dataset's files or hub id cannot be found; the message says how to obtain them."""


class SourceFileError(ValueError):
    """A source file cannot be read as text or JSON; the message names dataset, file and where."""


@contextlib.contextmanager
def reading(dataset: str, source: str, path: Path) -> Iterator[None]:
    """Turn a decoding error while reading ``path`` into one line naming dataset, file and place."""
    where = f"dataset {dataset!r} (source {source}): {path}"
    try:
        yield
    except UnicodeDecodeError as exc:
        raise SourceFileError(
            f"{where}: not {exc.encoding} text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            f"re-save the file as UTF-8 or set options.encoding"
        ) from None
    except json.JSONDecodeError as exc:
        raise SourceFileError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def require_layout(root: Path, files: Sequence[str], folder: str, where: str, advice: str) -> None:
    """Raise SourceNotFoundError naming every missing file and folder of a release under ``root``
    (``where``: e.g. "dataset 'x' (source slake)"; ``advice``: how to obtain the release)."""
    missing = [str(root / name) for name in files if not (root / name).is_file()]
    if not (root / folder).is_dir():
        missing.append(f"{root / folder}/")
    if missing:
        raise SourceNotFoundError(f"{where}: {', '.join(missing)} not found. {advice}")


def json_problem(text: str, lines: bool) -> str:
    """Where ``text`` (JSON, or JSON Lines) stops parsing, for messages of readers that do not say."""
    for number, line in enumerate(text.splitlines() if lines else [text], start=1):
        try:
            if line.strip() or not lines:
                json.loads(line)
        except json.JSONDecodeError as exc:
            return f"line {number if lines else exc.lineno} column {exc.colno}: {exc.msg}"
    return "not a table of records"


def check_columns_option(where: str, columns: Mapping[str, Any]) -> None:
    unknown = sorted(set(columns) - set(UNIFIED_NAMES))
    if unknown:
        raise ConfigError(
            f"{where}: columns has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(UNIFIED_NAMES)}"
        )


def check_split_names_option(where: str, split_names: Mapping[str, str]) -> None:
    for name, target in split_names.items():
        if target not in SPLIT_TARGETS:
            raise ConfigError(
                f"{where}: split_names.{name}={target!r} is not one of {', '.join(SPLIT_TARGETS)}"
            )


def resolve_columns(
    preset: Mapping[str, str], user: Mapping[str, str | None], available: Collection[str], where: str
) -> dict[str, str]:
    """Unified name → source column. Preset columns absent from the data are skipped; a
    column the user names must exist; ``None`` in ``user`` drops a preset column."""
    merged = {**preset, **user}
    for name, column in user.items():
        if column is not None and column not in available:
            raise ConfigError(
                f"{where}: columns.{name}={column!r} is not a column of the data; "
                f"available: {', '.join(sorted(available))}"
            )
    columns = {name: col for name, col in merged.items() if col is not None and col in available}
    # Caption data: a caption column and no question column (generic presets name both).
    is_vqa = "question" in columns or "caption" not in columns
    required = ("image", "question", "answer") if is_vqa else ("image", "caption")
    other_task = ("caption", "cui") if is_vqa else ("question_id", "question", "answer", "answer_type")
    columns = {name: col for name, col in columns.items() if name not in other_task}
    missing = [name for name in required if name not in columns]
    if missing:
        raise ConfigError(
            f"{where}: no source column for {', '.join(missing)} (looked for "
            f"{', '.join(repr(merged.get(n, n)) for n in missing)}); available: "
            f"{', '.join(sorted(available))}; map them with options.columns"
        )
    return columns


def resolve_split_names(names: Iterable[str], user: Mapping[str, str], where: str) -> dict[str, str]:
    """Source split name → train | val | test | drop; unknown names fail with a hint."""
    table = {**DEFAULT_SPLIT_NAMES, **user}
    names = [str(n) for n in names]
    unknown = sorted({n for n in names if n not in table})
    if unknown:
        raise ConfigError(
            f"{where}: split name(s) {', '.join(map(repr, unknown))} have no mapping; add "
            f"split_names: {{{unknown[0]}: train|val|test|drop}}"
        )
    return {n: table[n] for n in names}


def image_file(
    value: str | Path, image_dir: Path | None, absolute_paths: bool = False
) -> tuple[Path | None, str | None]:
    """(path to read, None) for a path cell, or (None, reason) when the path is not allowed.

    A relative path must stay inside ``image_dir`` (checked on the written path, so symlinked
    folders inside it still work); an absolute path is read only with ``absolute_paths``."""
    path = Path(value).expanduser()
    if path.is_absolute():
        if not absolute_paths:
            return None, (f"image outside the image folder (absolute path {str(value)!r}; set "
                          f"options.absolute_image_paths: true to read it)")
        return path, None
    if os.path.normpath(path).split(os.sep)[0] == os.pardir:
        return None, f"image outside the image folder (path {str(value)!r} leaves {str(image_dir or '.')!r})"
    return (image_dir / path if image_dir is not None else path), None


def image_bytes(value: Any, image_dir: Path | None, absolute_paths: bool = False) -> tuple[bytes, str | None]:
    """(encoded bytes, None) of one cell: bytes, a datasets {bytes, path} dict, a PIL image or a
    file path (relative ones under ``image_dir``); (b"", reason naming the path) when a path
    cell cannot be read (see ``image_file``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"]), None
        return image_bytes(value.get("path"), image_dir, absolute_paths)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return b"", None
    if isinstance(value, Image.Image):
        # Only decoded images land here; keep their own format where PIL knows it.
        buffer = io.BytesIO()
        value.save(buffer, format=value.format or "PNG")
        return buffer.getvalue(), None
    if isinstance(value, (str, Path)):
        path, problem = image_file(value, image_dir, absolute_paths)
        if problem:
            return b"", problem
        return (path.read_bytes(), None) if path.is_file() else (b"", f"missing image (no file {str(path)!r})")
    raise TypeError(f"cannot read an image from a {type(value).__name__} cell: {str(value)[:80]!r}")


def content_id(data: bytes) -> str:
    """Stable image id from the encoded bytes, so an image shared by questions has one id."""
    return hashlib.sha1(data).hexdigest()[:16]


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, Path))


def _images_and_ids(
    cells: pd.Series, image_dir: Path | None, absolute_paths: bool
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(bytes, default image_id, why the image could not be read or None) per row; files are
    read once per distinct path."""
    is_path = cells.map(_is_path)
    paths = {p: image_bytes(p, image_dir, absolute_paths) for p in cells[is_path].map(str).unique()}
    read = cells.where(~is_path, None).map(lambda v: image_bytes(v, image_dir, absolute_paths))
    read[is_path] = cells[is_path].map(lambda p: paths[str(p)])
    data, problems = read.map(lambda r: r[0]), read.map(lambda r: r[1])
    # A path names the image even when the file is missing, which keeps two missing files
    # apart; for embedded bytes the content hash is the only stable name.
    ids = data.map(content_id)
    # One bytes object per distinct image: Arrow gives each row its own copy, and VQA
    # sets ask ~5-7 questions per image.
    shared: dict[str, bytes] = {}
    data = pd.Series([shared.setdefault(i, b) for i, b in zip(ids, data)], index=data.index, dtype=object)
    ids[is_path] = cells[is_path].map(str)
    return data, ids, problems


def row_image_ids(rows: pd.DataFrame, image_dir: Path | None, absolute_paths: bool = False) -> pd.Series:
    """The image_id each row will get, without keeping any image: the source's image_id column,
    else a path cell's text, else the content hash of the bytes (as ``unify_rows`` names them)."""
    if "image_id" in rows:
        return rows["image_id"].map(_as_text)
    cells = rows["image"]
    return cells.map(lambda v: str(v) if _is_path(v) else content_id(image_bytes(v, image_dir, absolute_paths)[0]))


def _as_text(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return ";".join(str(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def val_images(train_ids: Iterable[str], fraction: float, seed: int) -> tuple[frozenset[str], str]:
    """The ``fraction`` of the train image ids that become ``val`` (all their rows), and the rule.

    Images are ordered by a seeded hash of their id, so the choice does not depend on row
    order and each image lands in exactly one split."""
    train_ids = pd.Series(list(dict.fromkeys(train_ids)), dtype=object)
    n_val = min(max(1, round(fraction * len(train_ids))), max(len(train_ids) - 1, 0))
    order = train_ids.map(lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest()).argsort()
    val_ids = frozenset(train_ids.iloc[order.to_numpy()[:n_val]])
    rule = (
        f"the source has no validation split: val = {n_val} of {len(train_ids)} train images "
        f"(fraction {fraction}, seed {seed}) with all their rows, chosen by a seeded hash of image_id"
    )
    return val_ids, rule


def split_val_by_image(rows: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, str]:
    """Move ``fraction`` of the train images (all their rows) to ``val`` (see ``val_images``)."""
    val_ids, rule = val_images(rows.loc[rows["split"] == "train", "image_id"], fraction, seed)
    rows = rows.copy()
    rows.loc[(rows["split"] == "train") & rows["image_id"].isin(val_ids), "split"] = "val"
    return rows, rule


def select_rows(raw: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """The mapped columns (unified names) and ``split`` of the rows not split to ``drop``."""
    raw = raw[raw["split"] != "drop"].reset_index(drop=True)
    rows = pd.DataFrame({name: raw[col] for name, col in columns.items()}, index=raw.index)
    rows["split"] = raw["split"]
    return rows


def number_questions(rows: pd.DataFrame, dataset: str, counters: dict[str, int]) -> None:
    """Give VQA rows without a question_id one: ``{dataset}-{split}-{n}``, n counting the split's
    rows in source order; ``counters`` carries the counts from earlier batches of the source."""
    if "question" not in rows or "question_id" in rows:
        return
    # Numbered before any filtering, so ids do not move when options change.
    number = rows.groupby("split").cumcount() + rows["split"].map(lambda s: counters.get(s, 0))
    rows["question_id"] = dataset + "-" + rows["split"] + "-" + number.astype(str)
    for split, count in rows["split"].value_counts().items():
        counters[split] = counters.get(split, 0) + int(count)


def source_rules(columns: Collection[str]) -> dict[str, str]:
    """The rules ``finish_rows`` applies to rows with these unified columns (``attrs``)."""
    if "question" not in columns:
        return {}
    if "answer_type" in columns:
        return {"answer_type_rule": "answer_type column of the source, lower-cased"}
    return {"answer_type_rule": CLOSED_RULE}


def finish_rows(rows: pd.DataFrame, image_dir: Path | None, absolute_image_paths: bool = False) -> pd.DataFrame:
    """Selected (and numbered) rows → unified rows: image cells as encoded bytes, ids and text
    as text, ``answer_type`` by ``source_rules``, columns in schema order (+ ``image_problem``)."""
    rows["image"], default_ids, problems = _images_and_ids(rows["image"], image_dir, absolute_image_paths)
    if problems.notna().any():
        rows[IMAGE_PROBLEM] = problems
    rows["image_id"] = rows["image_id"].map(_as_text) if "image_id" in rows else default_ids
    if "question_id" in rows:
        rows["question_id"] = rows["question_id"].map(_as_text)
    for name in TEXT_NAMES:
        if name in rows:
            rows[name] = rows[name].map(_as_text)
    if "question" in rows:
        if "answer_type" in rows:
            rows["answer_type"] = rows["answer_type"].map(_as_text).str.strip().str.lower()
        else:
            closed = rows["answer"].map(lambda a: a is not None and normalise_answer(a) in ("yes", "no"))
            rows["answer_type"] = np.where(closed, "closed", "open")
    return rows[[c for c in (*ORDER, IMAGE_PROBLEM) if c in rows]].reset_index(drop=True)


def unify_rows(
    raw: pd.DataFrame, columns: Mapping[str, str], *, dataset: str, image_dir: Path | None,
    val_fraction: float = 0.1, val_seed: int = 0, absolute_image_paths: bool = False,
) -> pd.DataFrame:
    """Raw source rows + ``split`` → unified VQA or caption rows (schema in module docstring
    of ``medvqa.data.schema``), all in memory. ``attrs`` records the rules applied, for
    meta.json. ``medvqa.data.batches`` does the same batch by batch."""
    rows = select_rows(raw, columns)
    number_questions(rows, dataset, {})
    rows = finish_rows(rows, image_dir, absolute_image_paths)
    attrs = source_rules(columns)
    if "train" in set(rows["split"]) and "val" not in set(rows["split"]):
        rows, attrs["val_split_rule"] = split_val_by_image(rows, val_fraction, val_seed)
    rows.attrs = attrs
    return rows
