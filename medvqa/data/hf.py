"""``hf`` dataset source: a Hugging Face hub dataset id, or a local directory in hub layout.

Reads, with one and the same ``datasets.load_dataset(path)`` call, either a hub id (cached by
``datasets``; offline runs need it cached or downloaded) or a directory such as
``data/train-00000-of-00001.parquet`` + ``data/test-00000-of-00001.parquet`` whose ``image``
column is a datasets ``Image`` feature ({bytes, path}). Returns unified rows of every split
(``medvqa.data.unify.unify_rows``); the original encoded image bytes are kept, never
re-encoded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import pandas as pd

from medvqa.data.batches import RawBatches, RawRows, unify_raw
from medvqa.data.unify import (
    UNIFIED_NAMES,
    SourceNotFoundError,
    check_columns_option,
    check_split_names_option,
    resolve_columns,
    resolve_split_names,
)
from medvqa.spec import Spec, check_choice, check_range

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
    cache_dir: str | None = None               # datasets cache; None = HF_DATASETS_CACHE
    absolute_image_paths: bool = False         # read image {path} cells that are absolute (no bytes)

    def validate(self, where: str) -> None:
        check_choice(where, "preset", self.preset, ("auto", *PRESETS))
        check_range(where, "val_fraction", self.val_fraction, 0.001, 0.9)
        check_columns_option(where, self.columns)
        check_split_names_option(where, self.split_names)

    def preset_columns(self) -> Mapping[str, str]:
        preset = self.preset if self.preset != "auto" else HUB_PRESETS.get(self.path, "generic")
        return PRESETS[preset]


def _missing_message(spec: HFSourceSpec, dataset: str, exc: Exception) -> str:
    preset = spec.preset if spec.preset != "auto" else HUB_PRESETS.get(spec.path, "")
    looks_local = spec.path.startswith((".", "/", "~")) or spec.path.count("/") != 1
    what = (
        "local directory does not exist" if looks_local
        else "no local directory of that name, and the hub id could not be loaded"
    )
    hub_id = "<hub id, e.g. flaviagiammarino/vqa-rad>" if looks_local else spec.path
    return (
        f"dataset {dataset!r} (source hf): {spec.path!r}: {what} ({type(exc).__name__}: {exc}). "
        f"To obtain it, on a machine with network access run `hf download {hub_id} --repo-type "
        f"dataset --local-dir data/{dataset}` (older huggingface_hub: `huggingface-cli download`) "
        f"and set options.path: data/{dataset}; or run `python -c \"import datasets; "
        f"datasets.load_dataset('{hub_id}')\"` once online to fill the datasets cache, which "
        f"offline runs (HF_DATASETS_OFFLINE=1) then read. "
        f"Credentialed datasets (MIMIC-CXR, ImageCLEF VQA-Med) are not on the hub: use "
        f"source: local with your downloaded copy.{_EXTRA_HINTS.get(preset, '')}"
    )


def _load_splits(spec: HFSourceSpec, dataset: str):
    # Imported here: `datasets` takes about a second to import and only this source needs it.
    import datasets
    import pyarrow.dataset as pds

    path = os.path.expanduser(spec.path)
    # A local parquet directory (what `hf download --local-dir` gives) is converted into the
    # datasets cache without pre-buffering, one row group at a time: with it, the conversion's
    # peak heap grew with the split (measured 305 / 542 / 1,047 MB at 750 / 3,000 / 12,000 rows
    # of 64 kB images; without: 259 / 370 / 429 MB). A hub id keeps the plain call, so a cache
    # filled online by `load_dataset(hub_id)` (same config hash) serves offline runs.
    parquet_dir = Path(path).is_dir() and next(Path(path).rglob("*.parquet"), None) is not None
    scan = {"fragment_scan_options": pds.ParquetFragmentScanOptions(pre_buffer=False)} if parquet_dir else {}
    try:
        return datasets.load_dataset(
            path, name=spec.name, revision=spec.revision, cache_dir=spec.cache_dir, **scan
        )
    except OSError as exc:  # FileNotFoundError, ConnectionError, DatasetNotFoundError
        if Path(path).is_dir():
            raise
        raise SourceNotFoundError(_missing_message(spec, dataset, exc)) from exc


def _batches(splits, columns: Mapping[str, str], split_map: Mapping[str, str]) -> RawBatches:
    """Source columns of the kept splits in Arrow record batches, as pandas (no image decoding:
    the arrow format returns the stored {bytes, path} structs; the Arrow files stay memory-mapped)."""
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
    splits = _load_splits(spec, dataset)
    split_map = resolve_split_names(splits.keys(), spec.split_names, where)
    available = next(iter(splits.values())).column_names
    columns = resolve_columns(spec.preset_columns(), spec.columns, available, where)
    root = Path(os.path.expanduser(spec.path))
    return RawRows(
        columns, _batches(splits, columns, split_map), image_dir=root if root.is_dir() else None,
        val_fraction=spec.val_fraction, val_seed=spec.val_seed, absolute_image_paths=spec.absolute_image_paths,
    )


def load_hf(spec: HFSourceSpec, dataset: str) -> pd.DataFrame:
    """All splits of a hub-format dataset as unified rows, in memory; see ``unify.unify_rows``."""
    return unify_raw(hf_raw_rows(spec, dataset), dataset)
