"""Shards of a split for parallel inference and captioning, and their merge.

A model entry with ``shards: N`` (N > 1) answers or captions each split as N independent jobs
(on SLURM, N GPU jobs): shard k of N holds the rows whose id hashes to k
(``int(sha1(id), 16) % N``), a rule that depends on nothing but the id, so a shard's rows never
change when other rows are added or removed. Each shard job writes
``results/{predictions,captions}/{dataset}/{model}/{seed}/shards/{split}.{k}.parquet`` (caption
shards resume from their chunks like an unsharded run); ``merge_shards`` writes the usual
``{split}.parquet`` in the split's own row order, so the merged file is the file an unsharded
run writes (greedy decoding; sampled answers and captions are seeded per shard and differ).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medvqa.data.schema import read_text_columns
from medvqa.io import write_parquet


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (command lines) → (K, N), shard K of N counted from 0."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: K must be in 0..N-1")
    return k, n


def shard_of(ids: Sequence[object], n_shards: int) -> np.ndarray:
    """(n,) int: the shard (0 .. n_shards - 1) of each id."""
    return np.array([int(hashlib.sha1(str(i).encode()).hexdigest(), 16) % n_shards for i in ids], dtype=np.int64)


def write_shard_rows(data: str | Path, id_column: str, shard: int, n_shards: int, out: str | Path) -> int:
    """Write the text columns of ``data``'s rows in ``shard`` (of ``n_shards``) to ``out``; returns the row count."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    rows = read_text_columns(data)
    keep = rows[shard_of(rows[id_column], n_shards) == shard]
    write_parquet(keep.reset_index(drop=True), out)
    return len(keep)


@contextlib.contextmanager
def shard_rows(data: str | Path, id_column: str, shard: tuple[int, int] | None) -> Iterator[Path]:
    """``data`` itself (``shard`` None), or a temporary parquet of the rows of shard (k, n)."""
    if shard is None:
        yield Path(data)
        return
    with tempfile.TemporaryDirectory(prefix="medvqa-shard-") as tmp:
        path = Path(tmp) / f"shard-{shard[0]}.parquet"
        write_shard_rows(data, id_column, shard[0], shard[1], path)
        yield path


def merge_shards(shards: Sequence[str | Path], data: str | Path, id_column: str, out: str | Path) -> pd.DataFrame:
    """Concatenate shard outputs into ``out`` in the order ids first appear in ``data``.

    Fails naming the id if an id of the split is missing from every shard or found twice.
    """
    merged = pd.concat([pd.read_parquet(path) for path in shards], ignore_index=True)
    merged[id_column] = merged[id_column].astype(str)
    repeated = merged[id_column][merged[id_column].duplicated()]
    if len(repeated):
        raise ValueError(f"{id_column} {repeated.iloc[0]!r} is in more than one shard of {data}")
    order = pd.unique(read_text_columns(data)[id_column].astype(str))
    missing = sorted(set(order) - set(merged[id_column]))
    if missing:
        raise ValueError(f"{len(missing)} {id_column}(s) of {data} are in no shard, e.g. {missing[0]!r}")
    position = pd.Series(np.arange(len(order)), index=order)
    merged = merged.iloc[np.argsort(position[merged[id_column]].to_numpy(), kind="stable")].reset_index(drop=True)
    write_parquet(merged, out)
    return merged


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m medvqa.inference.shards", description="Merge shard outputs in split order."
    )
    parser.add_argument("--data", required=True, help="results/data/{dataset}/{split}.parquet")
    parser.add_argument("--id-column", required=True, choices=("question_id", "image_id"))
    parser.add_argument("--out", required=True, help="the merged parquet")
    parser.add_argument("shards", nargs="+", help="the shard parquets")
    args = parser.parse_args(argv)
    merged = merge_shards(args.shards, args.data, args.id_column, args.out)
    print(f"{len(merged)} rows → {args.out}")


if __name__ == "__main__":
    main()
