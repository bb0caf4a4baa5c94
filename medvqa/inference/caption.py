"""Caption stage: a caption split + its image cache → generated captions, in resumable chunks.

Reads
  results/data/{dataset}/{split}.parquet            image_id, caption (image bytes are not read)
  the split's images (medvqa.data.images.load_image_cache: a raw or png cache, or the split parquet)
  a checkpoint (zero-shot) or a training run directory (see ``medvqa.inference.caption_models``)
Writes ``results/captions/{dataset}/{model}/{seed}/{split}.parquet``, one row per unique image,
in the split's order:
  image_id (str), caption (str, the first reference caption of the image), generated (str),
  model (str), seconds_per_image (float64: wall time of the image's batch / its size),
  chunk (int32: the chunk file the row was generated in)

Resuming: images are captioned in chunks of ``chunk_size``; each finished chunk is written
atomically to ``{out}.parts/chunk-NNNNN.parquet`` (image_id, generated, seconds_per_image, chunk).
A re-run after a kill reads the complete chunk files, skips their images and numbers new chunks
after the last one, so no image is lost, none is captioned twice, and at most one chunk of work
is repeated. Temporary files (``.chunk-*.tmp``) and unreadable chunks are discarded.
``{out}.parts/run.json`` records what decides the captions (settings, seed, and the size and mtime
of the model's and the image cache's files); parts written under anything else are discarded.
Batch and chunk sizes and the device may change between attempts. When
every image is done, the final parquet is assembled and ``{out}.parts/`` removed.

Sampling (``do_sample``) is seeded per chunk from (seed, chunk index), so an uninterrupted run and
a resumed one with the same chunk size give the same captions.

    python -m medvqa.inference.caption --data results/data/demo_captions/test.parquet \\
        --images results/data/demo_captions/images_64.test.npy \\
        --image-ids results/data/demo_captions/images_64.test.ids.json \\
        --out results/captions/demo_captions/blip_zs/0/test.parquet \\
        --kind blip --checkpoint Salesforce/blip-image-captioning-base --batch-size 16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from medvqa.data.images import load_image_cache
from medvqa.data.schema import read_text_columns
from medvqa.inference.caption_models import CaptionSpec, Captioner, load_captioner
from medvqa.inference.shards import parse_shard, shard_rows
from medvqa.io import cli_description, file_stamp, read_json, setup_logging, write_json, write_parquet
from medvqa.seed import seed_everything

__all__ = ["CaptionRun", "CaptionSpec", "caption_images", "load_captioner", "main", "run_captioning"]

log = logging.getLogger(__name__)

# Settings that may change between attempts without changing which caption an image gets.
FREE_KEYS = ("batch_size", "chunk_size", "device")
CHUNK_COLUMNS = ("image_id", "generated", "seconds_per_image", "chunk")
MANIFEST = "run.json"


@dataclasses.dataclass(frozen=True)
class CaptionRun:
    """What one call did: images captioned now, images taken from earlier chunks, whether done."""

    generated: int
    reused: int
    chunks_written: int
    complete: bool


def parts_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def chunk_path(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:05d}.parquet"


def unique_images(data: str | Path) -> pd.DataFrame:
    """image_id, caption: one row per image in first-appearance order (its first reference caption)."""
    rows = read_text_columns(data)
    if "caption" not in rows:
        raise ValueError(f"{data} has no caption column: the caption stage needs a caption dataset")
    rows = rows.assign(image_id=rows["image_id"].astype(str), caption=rows["caption"].astype(str))
    return rows.drop_duplicates("image_id")[["image_id", "caption"]].reset_index(drop=True)


def chunk_seed(seed: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def fingerprint(spec: CaptionSpec, seed: int, images: str | Path, run_dir: str | Path | None) -> dict:
    """What decides the captions: the settings except ``FREE_KEYS``, the seed, the model and images."""
    settings = {k: v for k, v in spec.to_dict().items() if k not in FREE_KEYS}
    model = run_dir if run_dir is not None else spec.checkpoint
    return {**settings, "seed": int(seed), "run_dir": None if run_dir is None else str(run_dir),
            "model_files": file_stamp(model) if model else None, "image_cache": file_stamp(images)}


def open_parts(parts: Path, manifest: dict) -> None:
    """Make ``parts`` hold only chunks written under ``manifest``; drop temporary files."""
    old = parts / MANIFEST
    manifest = json.loads(json.dumps(manifest))  # compare as read back (tuples become lists)
    if parts.exists() and (not old.exists() or read_json(old) != manifest):
        log.warning("%s was written with other settings: starting afresh", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    for tmp in parts.glob(".*.tmp"):  # atomic_path leftovers of a killed write
        log.info("removing the unfinished file %s", tmp.name)
        tmp.unlink()
    if not old.exists():
        write_json(manifest, old)


def read_parts(parts: Path) -> pd.DataFrame:
    """Rows of every complete chunk file, in chunk order; an unreadable file is deleted (redone)."""
    frames = []
    for path in sorted(parts.glob("chunk-*.parquet")):
        try:
            frame = pd.read_parquet(path, columns=list(CHUNK_COLUMNS))
        except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
            log.warning("discarding unreadable chunk %s (%s: %s)", path.name, type(exc).__name__, exc)
            path.unlink()
            continue
        frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(CHUNK_COLUMNS, (str, str, "float64", "int32"))})
    return pd.concat(frames, ignore_index=True).drop_duplicates("image_id")


def caption_images(captioner: Captioner, images: Sequence[np.ndarray], batch_size: int) -> tuple[list[str], list[float]]:
    """Captions of ``images`` (uint8 (H, W, 3) each) in batches → (texts, seconds per image)."""
    texts, seconds = [], []
    for start in range(0, len(images), batch_size):
        batch = [np.array(i) for i in images[start:start + batch_size]]  # copies out of the read-only memory map
        began = time.perf_counter()
        texts += captioner.generate(batch)
        seconds += [(time.perf_counter() - began) / len(batch)] * len(batch)
    return texts, seconds


def write_chunk(captioner: Captioner, cache: np.ndarray, rows: Sequence[int], ids: Sequence[str],
                index: int, spec: CaptionSpec, seed: int, parts: Path) -> None:
    """Caption the cache ``rows`` (image ids ``ids``) and write them as chunk ``index``."""
    seed_everything(chunk_seed(seed, index))
    texts, seconds = caption_images(captioner, [cache[r] for r in rows], spec.batch_size)
    frame = pd.DataFrame({"image_id": list(ids), "generated": texts, "seconds_per_image": seconds})
    write_parquet(frame.assign(chunk=np.int32(index)), chunk_path(parts, index))


def assemble(images: pd.DataFrame, done: pd.DataFrame, out: Path, model_name: str) -> pd.DataFrame:
    """The final table (module docstring) from the chunks' rows, in the split's image order."""
    frame = images.merge(done, on="image_id", how="left", validate="one_to_one")
    missing = frame["generated"].isna()
    if missing.any():
        raise RuntimeError(f"{int(missing.sum())} images lack a caption, e.g. {frame.loc[missing, 'image_id'].iloc[0]!r}")
    frame = frame.assign(model=model_name, chunk=frame["chunk"].astype(np.int32))
    frame = frame[["image_id", "caption", "generated", "model", "seconds_per_image", "chunk"]]
    write_parquet(frame, out)
    return frame


def run_captioning(
    spec: CaptionSpec, data: str | Path, images: str | Path, image_ids: str | Path, out: str | Path, *,
    seed: int = 0, model_name: str | None = None, run_dir: str | Path | None = None,
    threads: int | None = None, max_chunks: int | None = None, shard: tuple[int, int] | None = None,
    image_size: int | None = None,
) -> CaptionRun:
    """Caption every unique image of ``data`` into ``out`` (schema: module docstring), resuming
    from ``{out}.parts/``. ``max_chunks`` stops after that many new chunks (``complete=False``);
    ``shard`` (k, n): only the images of shard k of n (``medvqa.inference.shards``); ``image_size``:
    the dataset's (needed for ``image_cache: none``, checked against a cache)."""
    if threads:
        torch.set_num_threads(threads)
    out, parts = Path(out), parts_dir(out)
    with shard_rows(data, "image_id", shard) as rows:
        table = unique_images(rows)
    cache, row_of = load_image_cache(images, image_ids, image_size)
    absent = sorted(set(table["image_id"]) - set(row_of))
    if absent:
        raise ValueError(f"{images} lacks image_id {absent[0]!r} ({len(absent)} missing)")
    open_parts(parts, fingerprint(spec, seed, images, run_dir))
    done = read_parts(parts)
    done = done[done["image_id"].isin(set(table["image_id"]))]  # chunks of another version of the split
    todo = table.loc[~table["image_id"].isin(set(done["image_id"])), "image_id"].tolist()
    log.info("%d images: %d captioned in earlier chunks, %d to go", len(table), len(done), len(todo))
    written = _caption_pending(spec, todo, cache, row_of, parts, seed, run_dir, max_chunks, len(done), len(table))
    complete = written * spec.chunk_size >= len(todo)
    if complete:
        assemble(table, read_parts(parts), out, model_name or spec.checkpoint or str(run_dir))
        shutil.rmtree(parts)
        log.info("%d captions → %s", len(table), out)
    return CaptionRun(min(len(todo), written * spec.chunk_size), len(done), written, complete)


def _caption_pending(spec, todo, cache, row_of, parts, seed, run_dir, max_chunks, n_done, n_total) -> int:
    """Write chunks for the ``todo`` image ids; returns the number of chunks written."""
    chunks = [todo[i:i + spec.chunk_size] for i in range(0, len(todo), spec.chunk_size)][:max_chunks]
    if not chunks:
        return 0
    first = 1 + max((int(p.stem.split("-")[1]) for p in parts.glob("chunk-*.parquet")), default=-1)
    captioner = load_captioner(spec, run_dir)
    with tqdm(total=n_total, initial=n_done, desc="caption", unit="img", dynamic_ncols=True) as bar:
        for offset, ids in enumerate(chunks):
            began = time.perf_counter()
            write_chunk(captioner, cache, [row_of[i] for i in ids], ids, first + offset, spec, seed, parts)
            bar.update(len(ids))
            log.info("chunk %d: %d images in %.1f s; %d/%d done", first + offset, len(ids),
                     time.perf_counter() - began, bar.n, n_total)
    return len(chunks)


def _cli_type(field: dataclasses.Field):
    """Parser of one spec field's CLI value: numbers and booleans as YAML (8, 0.5, true, null), text as written."""
    if field.type.startswith("str"):
        return lambda text: None if text == "null" else text
    return yaml.safe_load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medvqa.inference.caption", description=cli_description(__doc__))
    for name in ("data", "images", "image-ids", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--run-dir", help="a training run directory (fine-tuned); default: zero-shot --checkpoint")
    parser.add_argument("--image-size", type=int, help="the dataset's image_size (needed for image_cache: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-name", help="the model column (default: the checkpoint)")
    parser.add_argument("--max-chunks", type=int, help="stop after this many new chunks (resume later)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--shard", type=parse_shard,
                        help="K/N: only the images of shard K of N (medvqa.inference.shards)")
    parser.add_argument("--log", help="log file (default stderr)")
    for field in dataclasses.fields(CaptionSpec):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=_cli_type(field), required=field.name == "kind")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    names = {f.name for f in dataclasses.fields(CaptionSpec)}
    spec = CaptionSpec.from_mapping({k: v for k, v in vars(args).items() if k in names and v is not None}, "caption")
    run = run_captioning(spec, args.data, args.images, args.image_ids, args.out, seed=args.seed,
                         model_name=args.model_name, run_dir=args.run_dir, threads=args.threads,
                         max_chunks=args.max_chunks, shard=args.shard, image_size=args.image_size)
    log.info("%s", run)


if __name__ == "__main__":
    main()
