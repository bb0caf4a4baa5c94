"""Data of the classifier families over the stage outputs: no image decoding, no tokenising.

Reads, for one split:
  results/data/{dataset}/{split}.parquet            question_id, image_id, answer (no image bytes)
  the split's images (medvqa.data.images.load_image_cache: a raw or png cache, or the split parquet)
  results/data/{dataset}/tokens/{tokenizer}.{split}.parquet   question_id, input_ids list<int32>
and the class index of each answer from answers.json.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from medvqa import paths
from medvqa.data.answers import normalise_answer
from medvqa.data.images import load_image_cache
from medvqa.data.schema import read_text_columns

IGNORE_INDEX = -100  # label of an answer outside the vocabulary: no loss, always counted wrong


@dataclasses.dataclass(frozen=True)
class SplitPaths:
    """One split's files; ``tokens`` is None for families that tokenise the text themselves;
    ``image_size`` (the dataset's) is needed to read images of ``image_cache: none`` and checks a cache."""

    parquet: str | Path
    images: str | Path
    image_ids: str | Path
    tokens: str | Path | None = None
    image_size: int | None = None

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, str], split: str, image_size: int | None = None) -> SplitPaths:
        """From named inputs ``{split}``, ``{split}_images``, ``{split}_image_ids`` (+ ``{split}_tokens``)."""
        return cls(
            inputs[split], inputs[f"{split}_images"], inputs[f"{split}_image_ids"], inputs.get(f"{split}_tokens"),
            image_size,
        )

    @classmethod
    def from_grammar(
        cls, results: str | Path, dataset: str, split: str, image_size: int, tokenizer: str | None,
        image_cache: str = "raw",
    ) -> SplitPaths:
        """The paths of the workflow's path grammar (``medvqa.paths``) under ``results``, of exactly this
        view (no tokens without a tokenizer); ``medvqa.paths.split_inputs`` follows derived views."""
        stem = paths.image_cache_stem(dataset, image_size, split, str(results))
        parquet = paths.split_parquet(dataset, split, str(results))
        cache = paths.cache_files(image_cache, stem, parquet)
        return cls(
            Path(parquet), Path(cache["images"]), Path(cache["image_ids"]),
            Path(paths.tokens(dataset, tokenizer, split, str(results))) if tokenizer else None, image_size,
        )


class Batch(NamedTuple):
    images: torch.Tensor  # (B, H, W, 3) uint8
    input_ids: torch.Tensor  # (B, L) int64, padded with pad_id
    attention_mask: torch.Tensor  # (B, L) int64, 1 on real tokens
    labels: torch.Tensor  # (B,) int64 class index or IGNORE_INDEX


class VQASplit(Dataset):
    """One split; item i = (image (H, W, 3) uint8, input_ids (L,) int64, label int64)."""

    def __init__(self, paths: SplitPaths, answers: Sequence[str]):
        if paths.tokens is None:
            raise ValueError(f"{paths.parquet}: the classifier families need pre-tokenised questions")
        rows = read_text_columns(paths.parquet)[["question_id", "image_id", "answer"]]
        tokens = pd.read_parquet(paths.tokens, columns=["question_id", "input_ids"])
        rows = rows.astype({"question_id": str, "image_id": str})
        rows = rows.merge(tokens.astype({"question_id": str}), on="question_id", how="left", validate="1:1")
        if rows["input_ids"].isna().any():
            missing = rows.loc[rows["input_ids"].isna(), "question_id"].iloc[0]
            raise ValueError(f"{paths.tokens} has no tokens for question_id {missing!r} of {paths.parquet}")
        self.images, row_of = load_image_cache(paths.images, paths.image_ids, paths.image_size)
        unknown = sorted(set(rows["image_id"]) - set(row_of))
        if unknown:
            raise ValueError(f"{paths.images} lacks image_id {unknown[0]!r} ({len(unknown)} missing)")
        index = {a: i for i, a in enumerate(answers)}
        self.question_ids = rows["question_id"].tolist()
        self.image_rows = rows["image_id"].map(row_of).to_numpy(np.int64)
        self.input_ids = [np.asarray(ids, dtype=np.int64) for ids in rows["input_ids"]]
        labels = rows["answer"].map(normalise_answer).map(index)
        self.labels = labels.fillna(IGNORE_INDEX).to_numpy(np.int64)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.question_ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        # np.array copies the row out of a read-only memory map (raw cache).
        image = torch.from_numpy(np.array(self.images[self.image_rows[i]]))
        return image, torch.from_numpy(self.input_ids[i]), int(self.labels[i])


def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor, int]], pad_id: int) -> Batch:
    """Stack images, right-pad questions to the longest in the batch."""
    images, ids, labels = zip(*items)
    lengths = torch.tensor([len(x) for x in ids])
    input_ids = torch.full((len(ids), max(1, int(lengths.max()))), pad_id, dtype=torch.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
    mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
    return Batch(torch.stack(images), input_ids, mask, torch.tensor(labels, dtype=torch.int64))


def classifier_collate(pad_id: int) -> Callable[[Sequence], Batch]:
    return functools.partial(collate, pad_id=pad_id)


def make_loader(
    split: Dataset, batch_size: int, collate_fn: Callable[[Sequence], Any], shuffle: bool, seed: int = 0,
    workers: int = 0, drop_last: bool = False, sampler: Sampler | None = None,
) -> DataLoader:
    """Batches in file order, shuffled by a generator of its own seeded with ``seed``, or in the
    order of ``sampler`` (then ``shuffle`` and ``seed`` are ignored).

    The own generator keeps the data order independent of the global RNG, so a resumed run
    sees the same order as an uninterrupted one.
    """
    shuffle = shuffle and sampler is None
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        split,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        generator=generator,
        collate_fn=collate_fn,
        num_workers=workers,
        drop_last=drop_last,
    )
