"""``hf`` dataset source: a Hugging Face hub dataset id, or a local directory in hub layout.

A parquet dataset (every hub dataset in this project's configs) is read straight from its
parquet files, one row group at a time, with no copy:
- a local directory such as ``data/train-00000-of-00001.parquet`` + ``data/test-...parquet``
  (what ``hf download --local-dir`` gives);
- a hub id through the hub cache: ``huggingface_hub.snapshot_download`` of the repo's parquet
  files and README.md at ``revision`` (downloads what HF_HUB_CACHE lacks when online; with
  HF_HUB_OFFLINE=1 it resolves refs/<revision> → snapshots/<commit> in that cache); the
  commit read is stated as ``hub_commit`` (attrs → source/meta.json).
Which files make which split (and config ``name``) is decided by ``datasets``' own resolution
(``load_dataset_builder``: the README configs, else the file-name patterns), so the splits are
those ``load_dataset`` would give. A dataset that is not parquet (a loading script, JSON / CSV
files), or a hub id absent from the hub cache, falls back to ``datasets.load_dataset(path)``,
which converts the download into an Arrow copy in the datasets cache.

The ``image`` column is a datasets ``Image`` feature ({bytes, path}). Returns unified rows of
every split (``medvqa.data.unify.unify_rows``); the original encoded image bytes are kept, never
re-encoded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from medvqa.data.batches import RawBatches, RawRows, unify_raw
from medvqa.data.unify import (
    UNIFIED_NAMES,
    SourceNotFoundError,
    check_columns_option,
    check_split_names_option,
    resolve_columns,
    resolve_split_names,
)
from medvqa.io import read_batches
from medvqa.spec import Spec, check_choice, check_range

log = logging.getLogger(__name__)

_VQA = {"image": "image", "question": "question", "answer": "answer"}
# Unified name → source column. VQA-RAD and PathVQA have no answer-type column, so the
# yes/no rule of ``unify.CLOSED_RULE`` applies; SLAKE mirrors differ in which of the
# official fields they keep, and absent preset columns are skipped.
PRESETS = {
    "vqa_rad": _VQA,
    "path_vqa": _VQA,
    "slake": {
        **_VQA, "answer_type": "answer_type", "q_lang": "q_lang", "modality": "modality",
        "organ": "location", "content_type": "content_type", "image_id": "img_name",
        "question_id": "qid",
    },
    "rocov2": {"image": "image", "image_id": "image_id", "caption": "caption", "cui": "cui"},
    "generic": {name: name for name in UNIFIED_NAMES},
}
HUB_PRESETS = {
    "flaviagiammarino/vqa-rad": "vqa_rad",
    "flaviagiammarino/path-vqa": "path_vqa",
    "mdwiratathya/SLAKE-vqa-english": "slake",
    "eltorio/ROCOv2-radiology": "rocov2",
}
# What a hub id downloads into the hub cache: the parquet files, and the card whose YAML header
# may name configs and their data files. Every config's parquet files match.
HUB_FILES = ["*.parquet", "README.md"]
_EXTRA_HINTS = {
    "slake": " The official SLAKE release (Slake1.0 folder) is at https://www.med-vqa.com/slake/ "
    "and loads with source: slake.",
}


@dataclasses.dataclass(frozen=True)
class HFSourceSpec(Spec):
    """Options of the ``hf`` source (config ``datasets.<name>.options``)."""

    path: str                                  # hub dataset id or local hub-layout directory
    name: str | None = None                    # dataset configuration name (load_dataset name=)
    revision: str | None = None                # hub commit/tag to pin; None = default branch
    preset: str = "auto"                       # column preset; auto = by hub id, else generic
    # {unified name: source column} over the preset; null drops a preset column
    columns: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    # {source split: train|val|test|drop} over the defaults (validation/valid/dev → val, ...)
    split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    val_fraction: float = 0.1                  # share of train images made val if no val split
    val_seed: int = 0                          # seed of that by-image split
    cache_dir: str | None = None               # datasets cache (non-parquet fallback); None = HF_DATASETS_CACHE
    absolute_image_paths: bool = False         # read image {path} cells that are absolute (no bytes)

    def validate(self, where: str) -> None:
        check_choice(where, "preset", self.preset, ("auto", *PRESETS))
        check_range(where, "val_fraction", self.val_fraction, 0.001, 0.9)
        check_columns_option(where, self.columns)
        check_split_names_option(where, self.split_names)

    def preset_columns(self) -> Mapping[str, str]:
        preset = self.preset if self.preset != "auto" else HUB_PRESETS.get(self.path, "generic")
        return PRESETS[preset]


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or path.count("/") != 1


def _missing_message(spec: HFSourceSpec, dataset: str, exc: Exception) -> str:
    preset = spec.preset if spec.preset != "auto" else HUB_PRESETS.get(spec.path, "")
    looks_local = _looks_local(spec.path)
    what = (
        "local directory does not exist" if looks_local
        else "no local directory of that name, and the hub id is neither in the hub cache nor loadable"
    )
    hub_id = "<hub id, e.g. flaviagiammarino/vqa-rad>" if looks_local else spec.path
    return (
        f"dataset {dataset!r} (source hf): {spec.path!r}: {what} ({type(exc).__name__}: {exc}). "
        f"To obtain it, on a machine with network access run `hf download {hub_id} --repo-type "
        f"dataset` (older huggingface_hub: `huggingface-cli download`), which fills the hub cache "
        f"(HF_HUB_CACHE) that offline runs (HF_HUB_OFFLINE=1) read, or add `--local-dir "
        f"data/{dataset}` and set options.path: data/{dataset}. A hub dataset that is not parquet "
        f"(a loading script, JSON) is read by `datasets.load_dataset`: run `python -c \"import "
        f"datasets; datasets.load_dataset('{hub_id}')\"` once online to fill the datasets cache "
        f"(HF_DATASETS_OFFLINE=1 then reads it). "
        f"Credentialed datasets (MIMIC-CXR, ImageCLEF VQA-Med) are not on the hub: use "
        f"source: local with your downloaded copy.{_EXTRA_HINTS.get(preset, '')}"
    )


def _hub_snapshot(spec: HFSourceSpec) -> Path:
    """The hub cache folder of the dataset repo's parquet files (and README.md, whose YAML names
    the configs and splits), at ``spec.revision``; downloads what the cache lacks when online.
    Offline (HF_HUB_OFFLINE=1) huggingface_hub resolves refs/<revision> → snapshots/<commit>."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(
        spec.path, repo_type="dataset", revision=spec.revision, allow_patterns=HUB_FILES,
    ))


def parquet_split_files(directory: Path, spec: HFSourceSpec) -> dict[str, list[Path]] | None:
    """{split: its parquet files in order} as ``datasets.load_dataset(directory, name)`` would
    read them (README.md configs, else the file-name patterns: data/train-*, test/, ...);
    None when a split has a file that is not parquet (then ``load_dataset`` reads it)."""
    import datasets

    try:
        builder = datasets.load_dataset_builder(str(directory), name=spec.name, cache_dir=spec.cache_dir)
    except FileNotFoundError:  # no data file at all (e.g. a script repo's README only)
        return None
    files = {str(split): [Path(f) for f in paths] for split, paths in (builder.config.data_files or {}).items()}
    if not files or any(f.suffix != ".parquet" for paths in files.values() for f in paths):
        return None
    return files


def _load_splits(spec: HFSourceSpec, dataset: str) -> tuple[dict[str, list[Path]] | dict, Path | None, dict]:
    """(splits, local root, attrs): a split → parquet files map read without any copy when the
    dataset is parquet (a local directory, or a hub id through the hub cache), else the
    ``datasets.load_dataset`` DatasetDict (its Arrow cache); the root of a local directory; and
    for a hub id read from the hub cache, ``hub_commit`` (the snapshot's commit: meta.json)."""
    path = Path(os.path.expanduser(spec.path))
    if path.is_dir():
        files = parquet_split_files(path, spec)
        return (files if files is not None else _load_dataset(spec, str(path), dataset)), path, {}
    if _looks_local(spec.path):
        raise SourceNotFoundError(_missing_message(spec, dataset, FileNotFoundError(str(path))))
    try:
        snapshot = _hub_snapshot(spec)
        files = parquet_split_files(snapshot, spec)
    except OSError as exc:  # not in the hub cache offline, no such repo, hub unreachable
        log.info("%s: %s not read through the hub cache (%s); trying datasets.load_dataset", dataset, spec.path, exc)
        files = None
    if files is None:
        return _load_dataset(spec, spec.path, dataset), None, {}
    return files, None, {"hub_commit": f"{spec.path}@{snapshot.name}"}


def _load_dataset(spec: HFSourceSpec, path: str, dataset: str):
    """The fallback for datasets that are not parquet: ``datasets.load_dataset`` (an Arrow copy
    in the datasets cache)."""
    import datasets

    try:
        return datasets.load_dataset(path, name=spec.name, revision=spec.revision, cache_dir=spec.cache_dir)
    except OSError as exc:  # FileNotFoundError, ConnectionError, DatasetNotFoundError
        if Path(path).is_dir():
            raise
        raise SourceNotFoundError(_missing_message(spec, dataset, exc)) from exc


def _parquet_batches(files: Mapping[str, list[Path]], columns: Mapping[str, str], split_map) -> RawBatches:
    """Source columns of the kept splits read from their parquet files one row group at a time
    (``medvqa.io.read_batches``), as pandas; image cells stay the stored {bytes, path} structs."""
    needed = sorted(set(columns.values()))

    def batches(n: int, wanted: Collection[str], names: Collection[str] | None) -> Iterator[pd.DataFrame]:
        for name, paths in files.items():
            if split_map[name] not in wanted:
                continue
            for path in paths:
                for batch in read_batches(path, sorted(set(names)) if names is not None else needed, n):
                    yield batch.to_pandas().assign(split=split_map[name])

    return batches


def _arrow_batches(splits, columns: Mapping[str, str], split_map: Mapping[str, str]) -> RawBatches:
    """As ``_parquet_batches``, over a ``load_dataset`` DatasetDict (its Arrow files memory-mapped)."""
    needed = sorted(set(columns.values()))

    def batches(n: int, wanted: Collection[str], names: Collection[str] | None) -> Iterator[pd.DataFrame]:
        for name, ds in splits.items():
            if split_map[name] not in wanted:
                continue
            arrow = ds.select_columns(sorted(set(names)) if names is not None else needed).with_format("arrow")
            for table in arrow.iter(batch_size=n):
                yield table.to_pandas().assign(split=split_map[name])

    return batches


def hf_raw_rows(spec: HFSourceSpec, dataset: str) -> RawRows:
    """The hub-format dataset's raw rows, read in batches (``medvqa.data.batches``)."""
    where = f"datasets.{dataset}.options (hf source)"
    splits, root, attrs = _load_splits(spec, dataset)
    split_map = resolve_split_names(splits.keys(), spec.split_names, where)
    first = next(iter(splits.values()))
    parquet = isinstance(first, list)
    available = pq.read_schema(first[0]).names if parquet else first.column_names
    columns = resolve_columns(spec.preset_columns(), spec.columns, available, where)
    batches = (_parquet_batches if parquet else _arrow_batches)(splits, columns, split_map)
    return RawRows(
        columns, batches, image_dir=root,
        val_fraction=spec.val_fraction, val_seed=spec.val_seed, absolute_image_paths=spec.absolute_image_paths,
        attrs=attrs,
    )


def load_hf(spec: HFSourceSpec, dataset: str) -> pd.DataFrame:
    """All splits of a hub-format dataset as unified rows, in memory; see ``unify.unify_rows``."""
    return unify_raw(hf_raw_rows(spec, dataset), dataset)
