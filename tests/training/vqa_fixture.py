"""A tiny VQA dataset in the data stages' output formats, built with the real stage functions.

Layout under ``root`` (the workflow's path grammar, dataset ``fx``):
  data/fx/{split}.parquet, data/fx/answers.json, data/fx/images_32.{split}.npy (+ .ids.json) and .png.arrow,
  data/fx/tokens/words.{split}.parquet + words.vocab.json, data/fx/tokens/clip.{split}.parquet
and a tiny random CLIP checkpoint in ``root/pretrained/clip``.

The task needs the image: each picture has a red, green or blue background and one white
square in its left or right half; questions ask for the colour or the square's side.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medvqa.data.answers import write_answers
from medvqa.data.images import build_image_cache, build_png_cache
from medvqa.data.tokens import TokenizerSpec, build_word_vocab, tokenize_split
from medvqa.demo.pretrained import TinyClipSpec, write_tiny_clip
from medvqa.models.batch import SplitPaths
from medvqa.training.train import ModelConfig, TrainPaths

SIZE = 32
COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
QUESTIONS = {
    "colour": "What colour is the background?",
    "left": "Is the square on the left?",
    "side": "Where is the square?",
}
TINY_CLIP = TinyClipSpec(patch_size=8, hidden_size=32, layers=2, heads=2, projection_dim=32, vocab_size=300)


def picture(colour: str, left: bool, rng: np.random.Generator) -> bytes:
    pixels = np.empty((SIZE, SIZE, 3), np.uint8)
    pixels[:] = COLOURS[colour]
    x = int(rng.integers(1, SIZE // 2 - 9)) + (0 if left else SIZE // 2)
    y = int(rng.integers(1, SIZE - 9))
    pixels[y : y + 8, x : x + 8] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def split_rows(split: str, n_images: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        colour, left = list(COLOURS)[i % 3], bool((i // 3) % 2)
        image_id = f"{split}-img-{i}"
        image = picture(colour, left, rng)
        answers = {"colour": colour, "left": "yes" if left else "no", "side": "left" if left else "right"}
        for kind, question in QUESTIONS.items():
            rows.append(
                dict(question_id=f"{image_id}-{kind}", image_id=image_id, image=image, question=question,
                     answer=answers[kind], answer_type="closed" if kind == "left" else "open", split=split)
            )
    return pd.DataFrame(rows)


def build_fixture(root: Path, n_train: int = 24, n_eval: int = 6) -> Path:
    data = root / "data" / "fx"
    (data / "tokens").mkdir(parents=True)
    sizes = {"train": n_train, "val": n_eval, "test": n_eval}
    for seed, (split, n) in enumerate(sizes.items()):
        split_rows(split, n, seed).to_parquet(data / f"{split}.parquet", index=False)
        build_image_cache(data / f"{split}.parquet", SIZE, data / f"images_{SIZE}.{split}.npy",
                          data / f"images_{SIZE}.{split}.ids.json")
        build_png_cache(data / f"{split}.parquet", SIZE, data / f"images_{SIZE}.{split}.png.arrow")
    others = [data / "val.parquet", data / "test.parquet"]
    write_answers(data / "train.parquet", others, data / "answers.json")
    words = TokenizerSpec(kind="words", max_length=16)
    build_word_vocab(data / "train.parquet", words, data / "tokens" / "words.vocab.json")
    texts = split_rows("train", 3, 0)["question"].tolist()
    write_tiny_clip(root / "pretrained" / "clip", texts, SIZE, 0, TINY_CLIP)
    clip = TokenizerSpec(kind="hf", max_length=16, path=str(root / "pretrained" / "clip"))
    for split in sizes:
        tokenize_split(words, data / f"{split}.parquet", data / "tokens" / f"words.{split}.parquet",
                       data / "tokens" / "words.vocab.json")
        tokenize_split(clip, data / f"{split}.parquet", data / "tokens" / f"clip.{split}.parquet")
    return root


def split_paths(root: Path, split: str, tokenizer: str, image_cache: str = "raw") -> SplitPaths:
    return SplitPaths.from_grammar(root, "fx", split, SIZE, tokenizer, image_cache)


def train_paths(root: Path, tokenizer: str, image_cache: str = "raw") -> TrainPaths:
    vocab = root / "data" / "fx" / "tokens" / "words.vocab.json" if tokenizer == "words" else None
    return TrainPaths(
        split_paths(root, "train", tokenizer, image_cache), split_paths(root, "val", tokenizer, image_cache),
        root / "data" / "fx" / "answers.json", vocab,
    )


def cnn_lstm_config(**train) -> ModelConfig:
    model = dict(backbone="resnet18", pretrained=False, stages=2, embed_dim=16, hidden_dim=16,
                 attention_dim=16, classifier_dim=32, dropout=0.1)
    spec = dict(epochs=2, batch_size=16, lr=3e-3, backbone_lr=3e-3, warmup=0.1, patience=5, device="cpu")
    return ModelConfig.from_mapping({"family": "cnn_lstm", "tokenizer": "words", "model": model,
                                     "train": {**spec, **train}})


def clip_config(root: Path, **train) -> ModelConfig:
    model = dict(checkpoint=str(root / "pretrained" / "clip"), unfreeze_last=1, hidden_dim=32, dropout=0.1)
    spec = dict(epochs=2, batch_size=16, lr=3e-3, backbone_lr=1e-3, warmup=0.1, device="cpu")
    return ModelConfig.from_mapping({"family": "clip_classifier", "tokenizer": "clip", "model": model,
                                     "train": {**spec, **train}})


class KilledInEpochTwo(torch.utils.data.Dataset):
    """The training split, failing on its first item of epoch 2 (like a killed job)."""

    def __init__(self, split):
        self.split, self.calls = split, 0

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls > len(self.split):
            raise RuntimeError("killed")
        return self.split[i]
