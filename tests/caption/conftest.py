"""A small demo caption split on disk and tiny captioning checkpoints, built once per session."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from transformers.utils import logging as hf_logging

from medvqa.demo.dataset import make_demo
from medvqa.data.images import build_image_cache
from medvqa.demo.tiny_hf import write_tiny_blip
from medvqa.demo.tiny_vlm import write_tiny_vlm

IMAGE_SIZE = 32
N_IMAGES = 10


@pytest.fixture(scope="session")
def caption_split(tmp_path_factory) -> dict:
    """Paths of a 10-image demo caption split; image 0 has a second reference caption."""
    root = tmp_path_factory.mktemp("captions")
    rows = make_demo(seed=0, n_images=50, task="caption", image_px=64).head(N_IMAGES).assign(split="test")
    extra = rows.head(1).assign(caption="A second reference caption.")
    rows = pd.concat([rows, extra], ignore_index=True)
    paths = {
        "data": root / "test.parquet",
        "images": root / f"images_{IMAGE_SIZE}.test.npy",
        "image_ids": root / f"images_{IMAGE_SIZE}.test.ids.json",
    }
    rows.to_parquet(paths["data"])
    build_image_cache(paths["data"], IMAGE_SIZE, paths["images"], paths["image_ids"])
    return {**paths, "rows": rows}


@pytest.fixture(scope="session")
def texts(caption_split) -> list[str]:
    return [*caption_split["rows"]["caption"], "Describe this medical image."] * 3


@pytest.fixture(scope="session")
def blip_dir(tmp_path_factory, texts):
    return write_tiny_blip(tmp_path_factory.mktemp("blip"), texts, seed=0, task="caption", image_size=IMAGE_SIZE)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory, texts):
    """arch → directory of a tiny random checkpoint (written on first use)."""
    written = {}

    def get(arch: str):
        if arch not in written:
            written[arch] = write_tiny_vlm(arch, tmp_path_factory.mktemp(arch), texts, seed=0)
        return written[arch]

    return get


@pytest.fixture(scope="session")
def sharp_blip_dir(tmp_path_factory, blip_dir):
    """The tiny BLIP with stronger image pathways, so that greedy captions differ between images.

    With the tiny random initialisation the decoder barely attends to the image and every image
    gets the same caption, which would make batched-vs-single comparisons vacuous.
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    out = tmp_path_factory.mktemp("sharp_blip")
    model = BlipForConditionalGeneration.from_pretrained(blip_dir)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "patch_embedding" in name or ("crossattention" in name and name.endswith("weight")):
                param.mul_(5.0)
    model.save_pretrained(out)
    BlipProcessor.from_pretrained(blip_dir).save_pretrained(out)
    return out
