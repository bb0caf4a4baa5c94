"""Batched vs one-at-a-time caption generation through ``medvqa.inference.caption.run_captioning``.

Both runs caption the same demo images with the same random model, greedy, writing resumable
chunk files every ``--chunk-size`` images (as the caption rule does); only the batch size
differs. Prints and writes (``--out``) JSON with, for each run, images per second over the
generation time (sum of batch wall times, model loading excluded) and end to end (wall time of
the whole call: loading, chunk files, final parquet), their ratios, and the fraction of images
whose captions agree (1.0 in float32).

Models (random weights, built offline with the repo's tiny-checkpoint writers):
  blip tiny    write_tiny_blip defaults (width 32, 2 layers, 32 px images)
  blip medium  width 256, 4+4 layers, 16 px patches on 224 px images (196 image tokens)
  blip base    BLIP-base sizes: width 768, 12+12 layers, 16 px patches on 384 px images (576 tokens)
  vlm tiny     write_tiny_vlm("qwen2_vl") defaults (56 px images)
  vlm medium   Qwen2-VL, width 256, 4 LM layers, 4 ViT layers (width 128) on 224 px images

    python bench/bench_captioning.py                              # blip tiny, CPU
    python bench/bench_captioning.py --kind vlm --size medium --n 32 --batch-size 16
    python bench/bench_captioning.py --size base --device cuda --n 256 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from medvqa.data.images import build_image_cache, load_image_cache  # noqa: E402
from medvqa.demo.dataset import make_demo  # noqa: E402
from medvqa.demo.tiny_hf import TinyHFSpec, write_tiny_blip  # noqa: E402
from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm  # noqa: E402
from medvqa.inference.caption import CaptionSpec, caption_images, load_captioner, run_captioning  # noqa: E402

# (writer spec, image side of the cache) per kind and size.
BLIP_SIZES = {
    "tiny": (TinyHFSpec(), 32),
    "medium": (TinyHFSpec(hidden_size=256, layers=4, heads=4, patch_size=16, vocab_size=2000), 224),
    "base": (TinyHFSpec(hidden_size=768, layers=12, heads=12, patch_size=16, vocab_size=4000, max_length=512), 384),
}
VLM_SIZES = {
    "tiny": (TinyVlmSpec(), 56),
    "medium": (TinyVlmSpec(hidden_size=256, layers=4, heads=4, kv_heads=2, vision_hidden_size=128,
                           vision_layers=4, vision_heads=4, image_size=224, vocab_size=2000), 224),
}


def build_checkpoint(kind: str, size: str, out: Path, texts: list[str]) -> tuple[Path, int]:
    if kind == "blip":
        spec, side = BLIP_SIZES[size]
        return write_tiny_blip(out, texts, seed=0, task="caption", image_size=side, spec=spec), side
    spec, side = VLM_SIZES[size]
    return write_tiny_vlm("qwen2_vl", out, texts, seed=0, spec=spec), side


def demo_rows(n: int, side: int, rows_path: str | None) -> pd.DataFrame:
    """``n`` demo caption rows (image_id, image, caption, split), generated or read from ``rows_path``."""
    if rows_path:  # machines without pydicom (the demo's image sources) take rows made elsewhere
        return pd.read_parquet(rows_path).head(n)
    return make_demo(seed=0, n_images=max(50, n), task="caption", image_px=max(64, side)).head(n)


def build_split(root: Path, rows: pd.DataFrame, side: int) -> dict[str, Path]:
    paths = {"data": root / "test.parquet", "images": root / f"images_{side}.test.npy",
             "image_ids": root / f"images_{side}.test.ids.json"}
    rows.to_parquet(paths["data"])
    build_image_cache(paths["data"], side, paths["images"], paths["image_ids"])
    return paths


def timed_run(spec: CaptionSpec, split: dict[str, Path], out: Path) -> dict:
    began = time.perf_counter()
    run_captioning(spec, split["data"], split["images"], split["image_ids"], out, model_name="bench")
    wall = time.perf_counter() - began
    frame = pd.read_parquet(out)
    generation = float(frame["seconds_per_image"].sum())
    return {"batch_size": spec.batch_size, "images": len(frame), "generation_s": generation, "wall_s": wall,
            "images_per_s": len(frame) / generation, "images_per_s_end_to_end": len(frame) / wall,
            "seconds_per_image": generation / len(frame), "generated": frame["generated"].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=("blip", "vlm"), default="blip")
    parser.add_argument("--size", choices=("tiny", "medium", "base"), default="tiny")
    parser.add_argument("--n", type=int, default=32, help="images captioned by each run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=25, help="images per resumable chunk file")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rows", help="a caption parquet to take the images from (default: make the demo's)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.size not in (BLIP_SIZES if args.kind == "blip" else VLM_SIZES):
        parser.error(f"--size {args.size} is not defined for --kind {args.kind}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        side = (BLIP_SIZES if args.kind == "blip" else VLM_SIZES)[args.size][1]
        rows = demo_rows(args.n, side, args.rows)
        checkpoint, _ = build_checkpoint(args.kind, args.size, root / "checkpoint", list(rows["caption"]) * 3)
        split = build_split(root, rows, side)
        spec = CaptionSpec.from_mapping({
            "kind": args.kind, "checkpoint": str(checkpoint), "chunk_size": args.chunk_size,
            "max_new_tokens": args.max_new_tokens, "device": args.device, "dtype": args.dtype, "batch_size": 1,
        })
        images, _ = load_image_cache(split["images"], split["image_ids"])
        caption_images(load_captioner(spec), [images[i] for i in range(min(2, len(images)))], 2)  # warm-up
        single = timed_run(spec, split, root / "single.parquet")
        batched = timed_run(CaptionSpec.from_mapping({**spec.to_dict(), "batch_size": args.batch_size}),
                            split, root / "batched.parquet")
    agree = sum(a == b for a, b in zip(single.pop("generated"), batched.pop("generated"))) / args.n
    result = {
        "kind": args.kind, "size": args.size, "device": args.device, "dtype": args.dtype, "threads": args.threads,
        "max_new_tokens": args.max_new_tokens, "chunk_size": args.chunk_size, "one_at_a_time": single,
        "batched": batched, "speedup": batched["images_per_s"] / single["images_per_s"],
        "speedup_end_to_end": batched["images_per_s_end_to_end"] / single["images_per_s_end_to_end"],
        "caption_agreement": agree,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
