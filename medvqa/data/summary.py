"""Dataset summary stage: the filtered splits → results/data/{dataset}/summary.json.

Holds rows and unique images per split, closed/open counts, the answer distribution, the
majority-answer and question-only baselines on val and test (how far a model gets without
looking at the image), the rejected rows by kind of reason, the source's own notes (e.g. the
closed-question rule of datasets without an answer-type column), and the leakage audit
(``leakage``): duplicate pairs per split pair, the val/test rows of this view on an image that
duplicates a train image, and, in a clean view (filters.leakage: drop), what the filter removed;
and (``filters``) the view's filter settings with, per split, the imported rows and how many rows
each filter (question type, language, leakage, subsample) dropped and whether the split file is
a symlink to the source split (nothing dropped) or a copy; and (``image_storage``) the disk cost
of the images per split: encoded in the split parquet, as a raw uint8 cache, and as the cache of
the view's ``image_cache`` kind (its bytes on disk and per image).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from medvqa.data.answers import normalise_answer
from medvqa.data.baselines import majority_baseline, question_only_baseline
from medvqa.data.leakage import duplicated_images
from medvqa.data.prepare import FilterSpec, filter_rows, filter_steps, view_storage
from medvqa.data.schema import read_text_columns, task_of
from medvqa.io import read_batches, read_json, write_json

TOP_ANSWERS = 20
NPY_HEADER_BYTES = 128  # the .npy header numpy writes for a 4-d uint8 array


def _split_summary(rows: pd.DataFrame) -> dict:
    out = {"rows": len(rows), "images": int(rows["image_id"].nunique())}
    if task_of(rows) == "vqa":
        out["answer_type"] = {k: int(v) for k, v in rows["answer_type"].value_counts().items()}
        answers = rows["answer"].map(normalise_answer).value_counts()
        out["distinct_answers"] = len(answers)
        out["top_answers"] = {k: int(v) for k, v in answers.head(TOP_ANSWERS).items()}
    else:
        out["mean_caption_words"] = float(rows["caption"].str.split().str.len().mean())
    return out


def leakage_summary(
    audit: Mapping, splits: Mapping[str, pd.DataFrame], filters: FilterSpec,
    source_paths: Mapping[str, str | Path],
) -> dict:
    """The audit's pair counts, this view's val/test rows on duplicated images, and what the
    leakage filter removed: the rows that pass the view's other filters (before any subsample)
    and sit on a duplicated image."""
    out = {"hash": audit["hash"], "pairs": audit["pairs"], "filter": filters.leakage, "on_duplicated_images": {}}
    unsampled = dataclasses.replace(filters, leakage="keep", subsample=None)
    for split in ("val", "test"):
        duplicated = duplicated_images(audit, split)
        rows = splits[split]
        hit = int(rows["image_id"].astype(str).isin(duplicated).sum())
        out["on_duplicated_images"][split] = {"rows": hit, "share": hit / len(rows) if len(rows) else 0.0}
        if filters.leakage == "drop":
            candidates = filter_rows(read_text_columns(source_paths[split]), unsampled, split)
            removed = candidates[candidates["image_id"].astype(str).isin(duplicated)]
            out.setdefault("removed", {})[split] = {"rows": len(removed), "images": int(removed["image_id"].nunique())}
    return out


def filter_summary(
    filters: FilterSpec, source_paths: Mapping[str, str | Path], audit: Mapping | None,
    split_paths: Mapping[str, str | Path],
) -> dict:
    """The view's filter settings and, per split, the imported rows, how many each filter dropped,
    and how the split file stores them (``storage``: symlink to the source split, or copy)."""
    out = {"settings": filters.to_dict(), "splits": {}}
    for split, path in source_paths.items():
        rows = read_text_columns(path)
        duplicated = duplicated_images(audit, split) if audit is not None else frozenset()
        kept, dropped = filter_steps(rows, filters, split, duplicated)
        out["splits"][split] = {"imported": len(rows), "kept": len(kept), "dropped": dropped,
                                "storage": view_storage(split_paths[split], path)}
    return out


def image_storage(
    split_paths: Mapping[str, str | Path], image_size: int, kind: str = "raw",
    caches: Mapping[str, Mapping[str, str | Path]] | None = None,
) -> dict:
    """Disk cost of the view's images per split: the encoded bytes the split parquet holds (each
    distinct image once), what a raw uint8 cache at ``image_size`` takes, and the cache of the
    view's ``kind`` as written (``caches``: {split: {"images", "image_ids"}}; a derived view's are
    its base's, so bytes per image divides by the images that cache holds). Kind none stores
    nothing beyond the split parquet."""
    out = {"image_size": image_size, "cache": kind, "splits": {}}
    for split, path in split_paths.items():
        seen: set[str] = set()
        encoded = 0
        for batch in read_batches(path, ["image_id", "image"]):
            for image_id, data in zip(batch.column(0).to_pylist(), batch.column(1)):
                if image_id not in seen:
                    seen.add(image_id)
                    encoded += len(data.as_buffer())
        raw = len(seen) * image_size * image_size * 3 + NPY_HEADER_BYTES
        out["splits"][split] = {"images": len(seen), "encoded_bytes": encoded, "raw_cache_bytes": raw,
                                "raw_over_encoded": round(raw / encoded, 2) if encoded else None,
                                **_cache_bytes(kind, (caches or {}).get(split))}
    return out


def _cache_bytes(kind: str, cache: Mapping[str, str | Path] | None) -> dict:
    """{"cache_bytes", "cache_bytes_per_image"} of one split's cache files, measured on disk."""
    if kind == "none":
        return {"cache_bytes": 0, "cache_bytes_per_image": 0}
    if cache is None:
        return {}
    from medvqa.data.images import load_image_cache  # imported here: a summary without caches needs no PIL

    files = dict.fromkeys(str(f) for f in cache.values())  # png: both keys name one file
    size = sum(os.path.getsize(f) for f in files)
    n = len(load_image_cache(cache["images"], cache["image_ids"])[0])
    return {"cache_bytes": size, "cache_bytes_per_image": round(size / n) if n else None}


def summarise(
    dataset: str, split_paths: Mapping[str, str | Path], rejected_path: str | Path,
    meta_path: str | Path, out_path: str | Path, leakage_path: str | Path | None = None,
    filters: FilterSpec | None = None, source_paths: Mapping[str, str | Path] | None = None,
    image_size: int | None = None, image_cache: str = "raw",
    caches: Mapping[str, Mapping[str, str | Path]] | None = None,
) -> dict:
    """Write summary.json; the leakage section needs the source's leakage.json, the view's
    filters and its source split parquets; the image storage section the cache's image_size, kind
    and (raw, png) files."""
    splits = {split: read_text_columns(path) for split, path in split_paths.items()}
    rejected = pd.read_csv(rejected_path)
    # By kind: the detail in parentheses (a file name, an error text) would make one entry per row.
    kinds = rejected["reason"].str.split(" (", n=1, regex=False).str[0]
    summary = {
        "dataset": dataset,
        "source": read_json(meta_path),
        "splits": {split: _split_summary(rows) for split, rows in splits.items()},
        "rejected": {
            "rows": len(rejected),
            "by_reason": {k: int(v) for k, v in kinds.value_counts().items()},
        },
    }
    if task_of(splits["train"]) == "vqa":
        summary["baselines"] = {
            split: {
                "majority_answer": majority_baseline(splits["train"], splits[split]),
                "question_only": question_only_baseline(splits["train"], splits[split]),
            }
            for split in ("val", "test")
            if split in splits
        }
    if leakage_path is not None:
        summary["leakage"] = leakage_summary(read_json(leakage_path), splits, filters or FilterSpec(), source_paths)
    if filters is not None and source_paths is not None:
        audit = read_json(leakage_path) if leakage_path is not None else None
        summary["filters"] = filter_summary(filters, source_paths, audit, split_paths)
    if image_size is not None:
        summary["image_storage"] = image_storage(split_paths, image_size, image_cache, caches)
    write_json(summary, out_path)
    return summary
