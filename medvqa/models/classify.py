"""The dataset, batch, loss and prediction functions shared by the classifier families
(``cnn_lstm``, ``clip_classifier``): a module ``forward(images, input_ids, attention_mask)`` →
``VQAOutput`` over the answers of answers.json.

Data: ``medvqa.models.batch.VQASplit`` (cached images + pre-tokenised questions + class
index). Predictions: question_id (str), prediction (str, the most probable answer),
confidence (float, its softmax probability), topk_answers (list<str>), topk_probs (list<float>,
descending), and the attention maps (n, h, w) of families that have them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from medvqa.models.augment import AugmentSpec, augment, to_float
from medvqa.models.batch import IGNORE_INDEX, Batch, SplitPaths, VQASplit, classifier_collate, make_loader
from medvqa.models.common import BatchScore, PredictRun, Step


def dataset(paths: SplitPaths, answers: Sequence[str]) -> VQASplit:
    return VQASplit(paths, answers)


def collate(args: Mapping[str, Any], answers: Sequence[str], pad_id: int):
    return classifier_collate(pad_id)


def forward_batch(module: nn.Module, batch: Batch, device: torch.device, augment_spec: AugmentSpec | None = None):
    """One batch through the model → (logits (B, n_answers) float32, labels (B,), output)."""
    images = to_float(batch.images.to(device, non_blocking=True))
    if augment_spec is not None:
        images = augment(augment_spec, images)
    output = module(images, batch.input_ids.to(device), batch.attention_mask.to(device))
    return output.logits.float(), batch.labels.to(device), output


def score(module: nn.Module, batch: Batch, step: Step) -> BatchScore:
    """Cross-entropy over the in-vocabulary answers; out-of-vocabulary ones count as wrong."""
    logits, labels, _ = forward_batch(module, batch, step.device, step.augment if step.training else None)
    scored = int((labels != IGNORE_INDEX).sum())
    smoothing = step.label_smoothing if step.training else 0.0
    # A sum divided by the count: a batch of unknown answers only gives 0, not NaN.
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, label_smoothing=smoothing, reduction="sum")
    correct = int((logits.argmax(-1) == labels).sum())
    return BatchScore(loss / max(1, scored), scored, len(labels), correct)


@torch.no_grad()
def predict(
    module: nn.Module, args: Mapping[str, Any], answers: Sequence[str], data: VQASplit, run: PredictRun
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Top-k answers of every question of ``data`` in file order, and the attention maps (n, h, w)
    when the family has them (else None)."""
    k = min(run.top_k, len(answers))
    loader = make_loader(data, run.batch_size, classifier_collate(args.get("pad_id", 0)), shuffle=False)
    probs, indices, attention = [], [], []
    for batch in loader:
        logits, _, output = forward_batch(module, batch, run.device)
        top = logits.softmax(dim=-1).topk(k, dim=-1)
        probs.append(top.values.cpu())
        indices.append(top.indices.cpu())
        if output.attention is not None:
            attention.append(output.attention.float().cpu())
    probs, indices = torch.cat(probs).tolist(), torch.cat(indices).tolist()
    frame = pd.DataFrame({
        "question_id": data.question_ids,
        "prediction": [answers[row[0]] for row in indices],
        "confidence": [row[0] for row in probs],
        "topk_answers": [[answers[i] for i in row] for row in indices],
        "topk_probs": probs,
    })
    return frame, torch.cat(attention).numpy() if attention else None
