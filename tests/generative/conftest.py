"""Tiny checkpoints and on-disk splits shared by the generative-family tests (built once)."""

import pandas as pd
import pytest
import torch
from transformers.utils import logging as hf_logging

from builders import vqa_rows
from medvqa.data.images import build_image_cache
from medvqa.models.generative import TextImageSplit
from medvqa.demo.tiny_hf import write_tiny_blip, write_tiny_clip_gpt2

IMAGE_SIZE = 32


@pytest.fixture(scope="session", autouse=True)
def _quiet_and_single_threaded():
    # Tests share two cores with other work; the tiny models gain nothing from more threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    yield
    torch.set_num_threads(threads)


def _split(root, rows: pd.DataFrame, name: str) -> TextImageSplit:
    parquet = root / f"{name}.parquet"
    rows.to_parquet(parquet)
    npy, ids = root / f"images_{IMAGE_SIZE}.{name}.npy", root / f"images_{IMAGE_SIZE}.{name}.ids.json"
    build_image_cache(parquet, IMAGE_SIZE, npy, ids)
    return TextImageSplit(parquet, npy, ids)


@pytest.fixture(scope="session")
def vqa_split(tmp_path_factory) -> TextImageSplit:
    """18 questions on 6 solid-colour images: 'Is the image red?' yes/no, 'What colour…' red/blue."""
    return _split(tmp_path_factory.mktemp("vqa"), vqa_rows(n_images=6, questions_per_image=3), "train")


@pytest.fixture(scope="session")
def caption_split(tmp_path_factory) -> TextImageSplit:
    rows = vqa_rows(n_images=6, questions_per_image=1)
    rows = pd.DataFrame({
        "image_id": rows["image_id"], "image": rows["image"], "split": "train",
        "caption": ["a " + ("red" if a == "Yes" else "dark") + " square image" for a in rows["answer"]],
    })
    return _split(tmp_path_factory.mktemp("caption"), rows, "train")


@pytest.fixture(scope="session")
def texts(vqa_split, caption_split) -> list[str]:
    return [*vqa_split.texts["question"], *vqa_split.texts["answer"], *caption_split.texts["caption"]] * 5


@pytest.fixture(scope="session")
def clip_gpt2(tmp_path_factory, texts) -> dict:
    return write_tiny_clip_gpt2(tmp_path_factory.mktemp("clip_gpt2"), texts, seed=0, image_size=IMAGE_SIZE)


@pytest.fixture(scope="session")
def blip_dirs(tmp_path_factory, texts) -> dict:
    root = tmp_path_factory.mktemp("blip")
    return {
        task: write_tiny_blip(root / task, texts, seed=0, task=task, image_size=IMAGE_SIZE)
        for task in ("vqa", "caption")
    }


@pytest.fixture
def train_steps():
    """A minimal local training loop: AdamW on the trainable parameters; returns the losses."""

    def run(model, loss_fn, batch, steps: int, lr: float = 3e-3) -> list[float]:
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
        losses = []
        for _ in range(steps):
            loss = loss_fn(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    return run
