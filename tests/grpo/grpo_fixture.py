"""Demo VQA data (train split + image cache) and a tiny Qwen2-VL whose tokenizer learnt the demo texts."""

from __future__ import annotations

from pathlib import Path

from medvqa.demo.dataset import make_demo
from medvqa.data.images import build_image_cache
from medvqa.demo.tiny_vlm import write_tiny_vlm
from medvqa.models.batch import SplitPaths

SIZE = 56  # the tiny Qwen2-VL's image side: 2x2 merged image tokens per picture


def write_demo_split(root: Path, n_images: int = 24, split: str = "train") -> SplitPaths:
    """One split of the seeded demo (about 6.5 questions per image) as the data stage writes it."""
    root.mkdir(parents=True, exist_ok=True)
    rows = make_demo(seed=0, n_images=n_images, image_px=SIZE)
    parquet = root / f"{split}.parquet"
    rows[rows["split"] == split].reset_index(drop=True).to_parquet(parquet)
    paths = SplitPaths(parquet, root / f"images_{SIZE}.{split}.npy", root / f"images_{SIZE}.{split}.ids.json")
    build_image_cache(parquet, SIZE, paths.images, paths.image_ids)
    return paths


def write_tiny_qwen(root: Path, paths: SplitPaths) -> Path:
    """A tiny random Qwen2-VL whose BPE learnt the split's questions and answers."""
    import pandas as pd

    rows = pd.read_parquet(paths.parquet, columns=["question", "answer"])
    return write_tiny_vlm("qwen2_vl", root, [*rows["question"], *rows["answer"]], seed=0)
