"""Image cache kinds (``datasets.{name}.image_cache``: raw | png | none): disk per image and read
time per image of each, on one split parquet of unified rows (image_id, image).

Cases (``--cases``):
- ``demo``: the embedded demo's images (real anatomy with drawn lesions, 128 px PNGs), cached at 64 px;
- ``demo-448``: the same images rendered at 512 px, cached at 448 px;
- ``synthetic-448``: ``bench_data_scale``'s ROCOv2-like grayscale 448 px JPEGs (smooth structure
  plus Gaussian noise, sigma 12: noise is what PNG cannot compress, so a worst case), cached at 448 px.

Disk: raw = the .npy + .ids.json; png = the .png.arrow; none = nothing beyond the split parquet
(whose encoded bytes per image are given for reference). Read: mean time of ``--reads`` random
``images[i]`` of ``medvqa.data.images.load_image_cache`` (one thread), as a training loop reads.

    python bench/bench_image_cache.py --out /tmp/imgcache_bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from medvqa import paths  # noqa: E402
from medvqa.data.images import build_image_cache, build_png_cache, load_image_cache  # noqa: E402


def demo_rows(n_images: int, image_px: int) -> pd.DataFrame:
    from medvqa.demo.dataset import make_demo

    return make_demo(n_images=n_images, task="caption", image_px=image_px)[["image_id", "image"]]


def synthetic_rows(n_images: int) -> pd.DataFrame:
    from bench_data_scale import jpeg_bases

    images = jpeg_bases(n_images, px=448, seed=1)  # distinct pixels per image
    return pd.DataFrame({"image_id": [f"syn-{i:05d}" for i in range(n_images)], "image": images})


def measure(rows: pd.DataFrame, size: int, work: Path, reads: int) -> dict:
    """Build raw and png caches of ``rows`` at ``size``; bytes and read time per image of each kind."""
    work.mkdir(parents=True, exist_ok=True)
    split = work / "train.parquet"
    rows.to_parquet(split, row_group_size=64)
    stem = str(work / f"images_{size}.train")
    began = time.perf_counter()
    build_image_cache(split, size, f"{stem}.npy", f"{stem}.ids.json")
    built = {"raw": time.perf_counter() - began}
    began = time.perf_counter()
    build_png_cache(split, size, f"{stem}{paths.PNG_CACHE_SUFFIX}")
    built["png"] = time.perf_counter() - began
    n = len(rows)
    out = {"images": n, "size": size, "encoded_bytes_per_image": round(sum(map(len, rows["image"])) / n)}
    rng = np.random.default_rng(0)
    order = rng.integers(0, n, reads)
    for kind in paths.CACHE_KINDS:
        files = paths.cache_files(kind, stem, str(split))
        on_disk = 0 if kind == "none" else sum(os.path.getsize(f) for f in set(files.values()))
        images, _ = load_image_cache(files["images"], files["image_ids"], size)
        began = time.perf_counter()
        for i in order:
            np.array(images[int(i)])
        out[kind] = {"bytes_per_image": round(on_disk / n), "read_ms_per_image": round(
            1000 * (time.perf_counter() - began) / reads, 3), "build_s": round(built.get(kind, 0.0), 2)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--cases", nargs="+", default=["demo", "demo-448", "synthetic-448"])
    parser.add_argument("--images", type=int, default=300, help="images per case")
    parser.add_argument("--reads", type=int, default=500)
    args = parser.parse_args(argv)
    makers = {"demo": (lambda n: demo_rows(n, 128), 64), "demo-448": (lambda n: demo_rows(n, 512), 448),
              "synthetic-448": (synthetic_rows, 448)}
    results = {}
    for case in args.cases:
        make, size = makers[case]
        results[case] = measure(make(args.images), size, args.out / case, args.reads)
        print(json.dumps({case: results[case]}), flush=True)
    (args.out / "image_cache.json").write_text(json.dumps(results, indent=1))
    print("| case | images | encoded B/img | raw B/img | png B/img | none B/img | read ms/img raw / png / none "
          "| build s raw / png |")
    print("|---|---|---|---|---|---|---|---|")
    for case, r in results.items():
        print(f"| {case} ({r['size']} px) | {r['images']} | {r['encoded_bytes_per_image']:,} | "
              f"{r['raw']['bytes_per_image']:,} | {r['png']['bytes_per_image']:,} | 0 | "
              f"{r['raw']['read_ms_per_image']} / {r['png']['read_ms_per_image']} / {r['none']['read_ms_per_image']} | "
              f"{r['raw']['build_s']} / {r['png']['build_s']} |")


if __name__ == "__main__":
    main()
