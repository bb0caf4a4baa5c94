"""Data-stage scale benchmark: peak RSS and disk per image of each data stage, at growing N.

Writes synthetic datasets in hub layout (``data/{split}-00000-of-00001.parquet`` with a
datasets ``Image`` column, read through ``load_dataset`` like the real hub ids):
- ``caption``: ROCOv2-like (image, image_id, caption, cui; train/validation/test 75/12.5/12.5 %)
- ``vqa``: PathVQA / VQA-RAD-like (image, question, answer; 5 questions per image; train/test,
  so the import carves val off train by image).
Images are grayscale 448 px JPEGs of 40-50 kB (realistic for ROCOv2's radiology figures),
distinct bytes per image.

The same files are also put into a huggingface_hub cache (``hub_cache/``, the layout ``hf
download`` leaves: blobs, snapshots/<commit>, refs/main) as the dataset repo ``bench/synthetic``.

Each stage runs in its own subprocess (``--stage``) that prints its peak RSS (VmHWM of that
process, see ``peak_rss_mb``) and wall time: import (hf source on the local directory →
source/{split}.parquet), import_hub (the same through the hub id, offline from the hub cache:
HF_HUB_CACHE + HF_HUB_OFFLINE=1; writes results_hub/), filter (train + test, filters that keep
every row: the splits become views of the source), images (train cache at ``--size``), tokens
(words vocab + train tokens), score (test captions / answers aligned with a predictions file).
``python`` is the RSS of a process that only imports the stage modules. Disk: bytes each stage
wrote, per image (a symbolic link counts as its own few bytes; any ``datasets`` Arrow copy
counts for the imports).

    python bench/bench_data_scale.py --layout caption vqa --sizes 1000 4000 16000 --out /tmp/scale
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAGES = ("python", "import", "import_hub", "filter", "images", "tokens", "score")
HUB_ID = "bench/synthetic"
_SOI = b"\xff\xd8"


def jpeg_bases(count: int, px: int = 448, seed: int = 0) -> list[bytes]:
    """``count`` grayscale JPEGs of smooth structure plus noise (~45 kB each at 448 px)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:px, 0:px] / px
    out = []
    for _ in range(count):
        base = 128 + 80 * np.sin(6 * x + 3 * rng.random()) * np.cos(4 * y + 3 * rng.random())
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def distinct(base: bytes, index: int) -> bytes:
    """``base`` with a JPEG comment segment naming ``index``: distinct bytes, same pixels."""
    payload = f"synthetic image {index}".encode()
    return _SOI + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + base[2:]


def _write_split(path: Path, columns_of, n_rows: int, chunk: int = 512) -> None:
    """Hub-layout parquet written in chunks; the schema metadata marks ``image`` as a datasets Image."""
    import datasets
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, n_rows, chunk):
        columns = columns_of(start, min(start + chunk, n_rows))
        columns["image"] = [{"bytes": b, "path": None} for b in columns["image"]]
        table = datasets.Dataset.from_dict(columns).cast_column("image", datasets.Image()).data.table
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def make_caption_source(root: Path, n_images: int, group_rows: int = 512) -> None:
    bases = jpeg_bases(16)
    sizes = {"train": n_images * 6 // 8, "validation": n_images // 8}
    sizes["test"] = n_images - sum(sizes.values())
    offset = 0
    for split, n in sizes.items():
        def columns_of(a, b, split=split, offset=offset):
            ids = range(offset + a, offset + b)
            return {
                "image": [distinct(bases[i % len(bases)], i) for i in ids],
                "image_id": [f"ROCOv2_2023_{split}_{i:06d}" for i in ids],
                "caption": [f"Axial CT of the chest, case {i}, showing a {i % 7} cm lesion in the left lobe."
                            for i in ids],
                "cui": [["C0040405", "C0817096"][: 1 + i % 2] for i in ids],
            }
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_split(path, columns_of, n, group_rows)
        offset += n


def make_vqa_source(root: Path, n_images: int, group_rows: int = 512, per_image: int = 5) -> None:
    bases = jpeg_bases(16)
    sizes = {"train": n_images * 4 // 5}
    sizes["test"] = n_images - sizes["train"]
    offset = 0
    questions = ("is there a fracture?", "what organ is shown?", "is this a ct?", "where is the lesion?", "how many?")
    for split, n in sizes.items():
        def columns_of(a, b, offset=offset):
            rows = range(offset * per_image + a, offset * per_image + b)
            return {
                "image": [distinct(bases[(r // per_image) % len(bases)], r // per_image) for r in rows],
                "question": [questions[r % per_image] for r in rows],
                "answer": [("yes", "lung", "no", "left lobe", str(r % 4))[r % per_image] for r in rows],
            }
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_split(path, columns_of, n * per_image, group_rows)
        offset += n


def run_stage(stage: str, work: Path, size: int, batch_rows: int | None) -> None:
    """One stage, in this process, on ``work`` (source in work/src, outputs in work/results)."""
    from medvqa.data.images import build_image_cache
    from medvqa.data.prepare import FilterSpec, ImportSpec, filter_split, import_dataset
    from medvqa.data.tokens import TokenizerSpec, build_word_vocab, tokenize_split
    from medvqa.evaluate.inputs import read_captions, read_vqa

    out = work / ("results_hub" if stage == "import_hub" else "results")
    source, task = out / "source", json.loads((work / "layout.json").read_text())
    if stage in ("import", "import_hub"):
        path = HUB_ID if stage == "import_hub" else str(work / "src")
        options = {"path": path, "cache_dir": str(work / "hf_cache")}
        spec = ImportSpec.from_mapping({"source": "hf", "task": task, "options": options}, where="bench")
        paths = {s: source / f"{s}.parquet" for s in ("train", "val", "test")}
        extra = {"batch_rows": batch_rows} if batch_rows else {}
        import_dataset(spec, "bench", paths, out / "rejected.csv", source / "meta.json", **extra)
    elif stage == "filter":
        for split in ("train", "test"):
            filter_split(FilterSpec(language="all"), "bench", split, source / f"{split}.parquet",
                         out / f"{split}.parquet")
    elif stage == "images":
        cache = out / f"images_{size}.train"
        build_image_cache(out / "train.parquet", size, f"{cache}.npy", f"{cache}.ids.json")
    elif stage == "tokens":
        spec = TokenizerSpec(kind="words")
        build_word_vocab(out / "train.parquet", spec, out / "tokens" / "words.vocab.json")
        tokens = out / "tokens"
        tokenize_split(spec, out / "train.parquet", tokens / "words.train.parquet", tokens / "words.vocab.json")
    elif stage == "score":
        _score(out, task, read_captions, read_vqa)


def _score(out: Path, task: str, read_captions, read_vqa) -> None:
    import pandas as pd

    test = out / "test.parquet"
    if task == "caption":
        ids = pd.read_parquet(test, columns=["image_id"])["image_id"].unique()
        pd.DataFrame({"image_id": ids, "generated": "a ct scan"}).to_parquet(out / "captions.parquet")
        read_captions(test, out / "captions.parquet")
    else:
        ids = pd.read_parquet(test, columns=["question_id"])["question_id"]
        pd.DataFrame({"question_id": ids, "prediction": "yes", "confidence": 0.5}).to_parquet(out / "pred.parquet")
        read_vqa(test, out / "pred.parquet", ())


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class AnonPeak:
    """Peak RssAnon (heap, not file-backed pages such as memory-mapped Arrow files or the page
    cache of files written), sampled every 10 ms in a background thread."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _status_mb("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_mb("RssAnon"))


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: VmHWM of /proc/self/status. (getrusage's
    ru_maxrss is not used: on Linux it keeps the parent's high-water mark across fork + exec,
    so a child started by a large process reports at least the parent's size.)"""
    return _status_mb("VmHWM")


def _disk(paths) -> int:
    """Bytes stored: a symbolic link is its own few bytes, not its target's."""
    return sum(os.lstat(p).st_size for p in paths if p.is_symlink() or p.is_file())


def _import_outputs(out: Path) -> list[Path]:
    return [*(out / "source").glob("*.parquet"), out / "rejected.csv", *(out.parent / "hf_cache").rglob("*.arrow")]


STAGE_OUTPUTS = {
    "import": lambda out, size: _import_outputs(out),
    "import_hub": lambda out, size: _import_outputs(out.parent / "results_hub"),
    "filter": lambda out, size: [out / "train.parquet", out / "test.parquet"],
    "images": lambda out, size: [out / f"images_{size}.train.npy"],
    "tokens": lambda out, size: list((out / "tokens").glob("*")),
    "score": lambda out, size: [],
    "python": lambda out, size: [],
}


def measure(work: Path, stage: str, size: int, batch_rows: int | None) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--work", str(work), "--size", str(size)]
    if batch_rows:
        command += ["--batch-rows", str(batch_rows)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(work / "hub_cache")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"stage {stage} failed in {work}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["disk_bytes"] = _disk(STAGE_OUTPUTS[stage](work / "results", size))
    return result


def bench(
    layout: str, n_images: int, root: Path, stages, size: int, batch_rows: int | None, group_rows: int = 512,
) -> list[dict]:
    work = root / f"{layout}-{n_images}"
    if not (work / "layout.json").exists():
        (make_caption_source if layout == "caption" else make_vqa_source)(work / "src", n_images, group_rows)
        sys.path.insert(0, str(REPO / "tests"))
        from data.fixtures import hub_cache  # the hub cache layout the tests use

        hub_cache(work / "hub_cache", HUB_ID, work / "src")
        (work / "layout.json").write_text(json.dumps(layout))
    rows = []
    for stage in stages:
        result = measure(work, stage, size, batch_rows)
        rows.append({"layout": layout, "n_images": n_images, "stage": stage, **result,
                     "disk_per_image": result["disk_bytes"] / n_images})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", nargs="+", default=["caption", "vqa"], choices=["caption", "vqa"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 4000, 16000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--size", type=int, default=224, help="image cache side, px")
    parser.add_argument("--batch-rows", type=int, default=None, help="import batch (default: the module's)")
    # The source is read one row group at a time, so the import's heap follows the row group's
    # bytes (not N): 512 rows of ~64 kB = ~32 MB per group, as in the earlier runs.
    parser.add_argument("--row-group-rows", type=int, default=512, help="rows per row group of the source")
    parser.add_argument("--out", type=Path, default=Path("/tmp/medvqa-scale-bench"))
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        start, anon = time.perf_counter(), AnonPeak()
        if args.stage != "python":
            run_stage(args.stage, args.work, args.size, args.batch_rows)
        else:
            run_stage("none", args.work, args.size, args.batch_rows)
        seconds = round(time.perf_counter() - start, 2)
        peak_anon = anon.stop()
        print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "peak_anon_mb": round(peak_anon, 1),
                          "seconds": seconds}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        row for layout in args.layout for n in args.sizes
        for row in bench(layout, n, args.out, args.stages, args.size, args.batch_rows, args.row_group_rows)
    ]
    (args.out / "bench_data_scale.json").write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
