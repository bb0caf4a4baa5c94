"""Data, loss and decoding helpers shared by the generative families (``flamingo``, ``blip``,
``vlm_sft``).

Reads, for one split (see ``medvqa.models.batch`` for the classifier version):
  results/data/{dataset}/{split}.parquet            question_id, image_id, question, answer
                                                    (or image_id, caption); no image bytes
  the split's images (medvqa.data.images.load_image_cache: a raw or png cache, or the split parquet)

The generative families tokenise the prompt and the answer in their collators, not from the
pre-tokenised ``tokens/`` parquet: the label mask needs the exact boundary between prompt and
answer tokens, and the prompt template is a model setting, so the text is only a few dozen
tokens per example and tokenising it per batch costs far less than the model's forward pass.

An *example* is a dict ``{"id": str, "image": (H, W, 3) uint8 tensor, "question": str,
"answer": str}`` (VQA) or ``{"id": str, "image": ..., "caption": str}`` (captioning).
A *prediction* is a dict ``{"prediction": str, "answer_prob_product": float,
"answer_prob_mean": float, "samples": list[str]}``; ``generate_split`` turns a split's into the
predictions table of ``medvqa.models.generation`` (question_id, prediction, confidence, answer_prob,
answer_prob_mean, samples).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from medvqa.data.images import load_image_cache
from medvqa.data.schema import read_text_columns, task_of
from medvqa.models.batch import SplitPaths
from medvqa.models.common import BatchScore, Step
from medvqa.models.generation import prediction_frame
from medvqa.models.specs import GenerationSpec

IGNORE_INDEX = -100  # label of a position that adds no loss (prompt, padding)


class TextImageSplit(Dataset):
    """One split as examples (see the module docstring), images read from the memory-mapped cache."""

    def __init__(self, parquet: str | Path, images: str | Path, image_ids: str | Path, image_size: int | None = None):
        rows = read_text_columns(parquet)
        self.task = task_of(rows)
        self.ids = rows["question_id" if self.task == "vqa" else "image_id"].astype(str).tolist()
        self.texts = {
            key: rows[key].astype(str).tolist()
            for key in (("question", "answer") if self.task == "vqa" else ("caption",))
        }
        self.images, row_of = load_image_cache(images, image_ids, image_size)
        unknown = sorted(set(rows["image_id"].astype(str)) - set(row_of))
        if unknown:
            raise ValueError(f"{images} lacks image_id {unknown[0]!r} ({len(unknown)} missing)")
        self.image_rows = rows["image_id"].astype(str).map(row_of).to_numpy(np.int64)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        # np.array copies the row out of the read-only memory map.
        image = torch.from_numpy(np.array(self.images[self.image_rows[i]]))
        return {"id": self.ids[i], "image": image, **{key: texts[i] for key, texts in self.texts.items()}}


def stack_images(examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """The examples' images → (B, H, W, 3) uint8."""
    return torch.stack([torch.as_tensor(np.asarray(e["image"]), dtype=torch.uint8) for e in examples])


def image_statistics(image_processor) -> dict[str, Any]:
    """{"image_mean", "image_std", "image_size"} of a Hugging Face image processor.

    The models standardise tensors with these numbers (``models.common.Normalise``) instead
    of calling the processor, which would decode and resize PIL images inside the loop.
    """
    crop = getattr(image_processor, "crop_size", None)
    size = crop if getattr(image_processor, "do_center_crop", False) and crop else image_processor.size
    side = size.get("height") or size.get("shortest_edge")
    return {
        "image_mean": [float(x) for x in image_processor.image_mean],
        "image_std": [float(x) for x in image_processor.image_std],
        "image_size": int(side),
    }


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists → (ids (B, L) int64, attention_mask (B, L) int64).

    Decoder-only prompts are padded on the left so the next token of every row is predicted
    at the same (last) column during batched generation.
    """
    width = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(sequences), width), dtype=torch.int64)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.int64)
            mask[row, width - len(seq):] = 1
    return ids, mask


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def split_new_and_pretrained(model: nn.Module, pretrained: Sequence[nn.Module]) -> dict[str, list[nn.Parameter]]:
    """{"backbone": trainable parameters inside ``pretrained``, "head": the other trainable ones}."""
    inside = {id(p) for module in pretrained for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return {
        "backbone": [p for p in trainable if id(p) in inside],
        "head": [p for p in trainable if id(p) not in inside],
    }


def text_image_split(paths: SplitPaths, answers: Sequence[str] = ()) -> TextImageSplit:
    """The family ``dataset`` function: a split's text and cached images (no pre-tokenised text)."""
    return TextImageSplit(paths.parquet, paths.images, paths.image_ids, paths.image_size)


def answer_tokens(labels: torch.Tensor) -> int:
    """Target tokens of a batch whose model shifts internally (logits[:, t] predict labels[:, t + 1])."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def lm_score(loss_fn: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor]):
    """The family ``score`` function of a language-model ``loss_fn(model, batch)`` (mean over target
    tokens): no accuracy, the validation metric is the loss."""

    def score(module: nn.Module, batch: Mapping[str, Any], step: Step) -> BatchScore:
        return BatchScore(loss_fn(module, batch), answer_tokens(batch["labels"]), len(batch["ids"]), None)

    return score


def generate_split(
    data: Dataset, collate: Callable[[list], Mapping[str, Any]], spec: GenerationSpec,
    predict_batch: Callable[[Mapping[str, Any]], list[dict[str, Any]]],
) -> pd.DataFrame:
    """Predictions of every item of ``data`` in order → the predictions table (``medvqa.models.generation``)."""
    results = []
    loader = DataLoader(data, batch_size=spec.batch_size, shuffle=False, collate_fn=collate)
    for batch in tqdm(loader, desc="generate", leave=False, mininterval=5):
        results += [{"id": i, **row} for i, row in zip(batch["ids"], predict_batch(batch))]
    return prediction_frame(results, spec.confidence)
