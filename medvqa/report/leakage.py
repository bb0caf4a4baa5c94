"""Leakage section of the report: the data stage's duplicate-image audit of one dataset, and
its clean view (filters.leakage: drop) beside the original.

leakage_figure:  leakage.json + leakage_pairs.csv + source split parquets
                 → results/figures/{dataset}/leakage.{png,pdf}: example duplicate pairs side by
                 side (thumbnails, split and image id under each; cross-split pairs first)
leakage_table:   leakage.json → results/tables/{dataset}/leakage.{csv,md,tex,html}: pairs per
                 split pair, share of val/test rows on an image that duplicates a train image
clean_table:     metrics JSONs of the original and the clean view
                 → results/tables/{clean}/clean_vs_original.{split}.{csv,md,tex,html}
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Mapping, Sequence

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from medvqa.data.schema import SPLITS
from medvqa.io import read_json, write_csv
from medvqa.report.collect import Run, by_model, summarise_seeds
from medvqa.report.figures import empty_panel, new_figure, save_figure
from medvqa.report.spec import FigureSpec
from medvqa.report.tables import MISSING, columns_for, format_cell, write_formats

THUMB_PX = 160
CLEAN_COLUMNS = {"vqa": ("em_overall", "em_closed", "em_open"), "caption": ("bleu_4", "rouge_l")}


def example_pairs(pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` pairs to show: across splits before within, train-test first, exact before
    near, closest first (a reader wants to see the leaks that inflate test scores)."""
    order = {f"{a}-{b}": i for i, (a, b) in enumerate(
        [("train", "test"), ("train", "val"), ("val", "test"), ("train", "train"), ("val", "val"), ("test", "test")])}
    key = (pairs["split_a"] + "-" + pairs["split_b"]).map(order)
    ranked = pairs.assign(_key=key, _exact=pairs["kind"] != "exact")
    return ranked.sort_values(["_key", "_exact", "distance", "image_id_a", "image_id_b"]).head(k)


def _thumbnails(paths: Mapping[str, str | os.PathLike], wanted: Mapping[str, set[str]]) -> dict:
    """{(split, image_id): PIL thumbnail}, reading only the wanted rows of each split."""
    thumbs = {}
    for split, ids in wanted.items():
        if not ids:
            continue
        table = pq.read_table(paths[split], columns=["image_id", "image"], filters=[("image_id", "in", sorted(ids))])
        for image_id, data in zip(table.column("image_id").to_pylist(), table.column("image").to_pylist()):
            if (split, str(image_id)) not in thumbs:
                with Image.open(io.BytesIO(data)) as img:
                    thumb = img.convert("RGB")
                thumb.thumbnail((THUMB_PX, THUMB_PX))
                thumbs[(split, str(image_id))] = thumb
    return thumbs


def leakage_figure(
    audit_path: str | os.PathLike, pairs_path: str | os.PathLike, split_paths: Mapping[str, str | os.PathLike],
    png: str | os.PathLike, pdf: str | os.PathLike, spec: FigureSpec, title: str,
) -> int:
    """Draw up to ``spec.gallery_size`` duplicate pairs, one per row; return how many."""
    audit = read_json(audit_path)
    pairs = pd.read_csv(pairs_path, dtype={"image_id_a": str, "image_id_b": str})
    shown = example_pairs(pairs, spec.gallery_size)
    if shown.empty:
        fig = new_figure(5.0, 1.6)
        empty_panel(fig.add_subplot(), _no_pairs_message(audit))
        fig.suptitle(title, fontsize=10)
        save_figure(fig, png, pdf, spec.dpi)
        return 0
    wanted = {split: set() for split in split_paths}
    for row in shown.itertuples():
        wanted[row.split_a].add(row.image_id_a)
        wanted[row.split_b].add(row.image_id_b)
    thumbs = _thumbnails(split_paths, wanted)
    fig = new_figure(4.6, 2.5 * len(shown) + 0.4)
    axes = fig.subplots(len(shown), 2, squeeze=False)
    for (left, right), row in zip(axes, shown.itertuples()):
        near = f"near ({audit['hash']['near']} distance {row.distance})"
        kind = "exact (same pixels)" if row.kind == "exact" else near
        for ax, split, image_id in ((left, row.split_a, row.image_id_a), (right, row.split_b, row.image_id_b)):
            ax.imshow(thumbs[(split, image_id)])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{split}\n{image_id}", fontsize=7)
        left.set_title(f"{row.split_a}-{row.split_b}: {kind}", fontsize=7, loc="left")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, png, pdf, spec.dpi)
    return len(shown)


def _no_pairs_message(audit: Mapping) -> str:
    h = audit["hash"]
    return (f"No duplicate images within or across splits: no two images with the same pixels, and none "
            f"within {h['threshold']} bits of {h['bits']}-bit {h['near']}.")


def _share(block: Mapping, total: int) -> str:
    return f"{block['rows']} of {total} ({100 * block['share']:.1f}%)"


def leakage_notes(audit: Mapping) -> list[str]:
    """What was hashed, and the val/test rows on images that duplicate train images."""
    h = audit["hash"]
    notes = [f"Exact: {h['exact']}. Near: {h['near']} with {h['bits']} bits, at most {h['threshold']} "
             f"differing bits. Audited: the imported splits before filters."]
    for split, block in audit["affected"].items():
        line = (f"{split}: {block['images']} image(s) duplicate a train image; "
                f"{_share(block, audit['rows'][split])} {split} rows are on them")
        if "same_question" in block:
            line += (f"; {block['same_question']} of these questions are also asked of the train duplicate, "
                     f"{block['same_question_same_answer']} with the same answer")
        notes.append(line + ". A clean view (filters.leakage: drop) removes these rows.")
    return notes


def leakage_table(audit_path: str | os.PathLike, outputs: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """Every split pair (zeros included, so 'split by image' is visible) with its pair counts."""
    audit = read_json(audit_path)
    records = []
    for a, b in itertools.combinations_with_replacement(SPLITS, 2):
        counts = audit["pairs"].get(f"{a}-{b}", {"exact": 0, "near": 0, "images_a": 0, "images_b": 0})
        records.append({"split_a": a, "split_b": b, **counts})
    frame = pd.DataFrame(records)
    header = ["Splits", "Exact pairs", "Near pairs", "Images (first)", "Images (second)"]
    rows = [[f"{r['split_a']}-{r['split_b']}", str(r["exact"]), str(r["near"]), str(r["images_a"]),
             str(r["images_b"])] for r in records]
    write_csv(frame, outputs["csv"])
    dataset = audit["dataset"]
    write_formats(header, rows, leakage_notes(audit), f"{dataset}: duplicate and near-duplicate images",
                  f"tab:{dataset}-leakage", outputs)
    return frame


def clean_table(
    original: Sequence[Run], clean: Sequence[Run], names: tuple[str, str], split: str,
    outputs: Mapping[str, str | os.PathLike], removed: Mapping[str, Mapping[str, int]] | None = None,
) -> pd.DataFrame:
    """Models run on both views, each metric on the original and the clean split side by side;
    ``removed``: the clean view's summary.json ``leakage.removed`` ({split: {rows, images}})."""
    task = (original or clean)[0].metrics.get("task", "vqa")
    columns = [c for c in columns_for(task) if c.key in CLEAN_COLUMNS[task]]
    views = (by_model(original), by_model(clean))
    header, rows, records = ["Model", f"n ({names[0]})", f"n ({names[1]})"], [], []
    for c in columns:
        header += [f"{c.label} ({names[0]})", f"{c.label} ({names[1]})", f"{c.label} Δ (points)"]
    for model in [m for m in views[0] if m in views[1]]:
        cells = [[summarise_seeds(view[model], c.path) for view in views] for c in columns]
        record = {"model": model, **{f"n_{v}": _n(view[model]) for v, view in zip(("original", "clean"), views)}}
        row = [model, str(record["n_original"]), str(record["n_clean"])]
        for c, (before, after) in zip(columns, cells):
            record[f"{c.key}_original"] = None if before is None else before.value
            record[f"{c.key}_clean"] = None if after is None else after.value
            delta = MISSING
            if before is not None and after is not None:  # round first: -0.04 points prints +0.0, not -0.0
                delta = f"{round(100 * (after.value - before.value), 1) + 0.0:+.1f}"
            row += [format_cell(before, c), format_cell(after, c), delta]
        records.append(record)
        rows.append(row)
    frame = pd.DataFrame(records)
    write_csv(frame, outputs["csv"])
    notes = [f"{names[1]} is {names[0]} without the val/test rows whose image duplicates a train image "
             "(filters.leakage: drop; see the dataset's leakage table). Δ = clean - original, in points.",
             "Both views are scored with the same training runs (a clean view has its original's train split "
             "and reuses its checkpoints), so Δ comes from the removed questions alone."]
    if removed and split in removed:
        notes.append(f"Removed from {split}: {removed[split]['rows']} rows on {removed[split]['images']} image(s).")
    write_formats(header, rows, notes, f"{names[0]} vs {names[1]}: the {split} split with and without duplicated "
                  "images", f"tab:{names[1]}-clean-{split}", outputs)
    return frame


def _n(runs: Sequence[Run]) -> int | None:
    return (runs[0].metrics.get("n") or {}).get("total") if runs else None
