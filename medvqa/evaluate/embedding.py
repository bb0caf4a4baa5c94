"""Embedding cosine similarity between predicted and reference texts.

Used by the scoring stage (``medvqa.evaluate.score``) when ``ScoreSpec.embedding_encoder``
names a sentence-embedding model: a local ``save_pretrained`` directory or a hub id, loaded
with ``AutoTokenizer`` / ``AutoModel`` (so it works offline on a local copy). Sentence
vectors are the attention-masked mean of the last hidden state; similarity is their cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POOLING = "mean of last_hidden_state over non-padding tokens, then cosine similarity"


class SentenceEncoder:
    """A Hugging Face encoder turned into ``encode(texts) -> (n, hidden) float32 array``."""

    def __init__(self, name_or_path: str, batch_size: int = 32, max_length: int = 128, device: str = "cpu"):
        # transformers/torch are imported only when an encoder is configured: scoring without
        # one must not pay their import time.
        from transformers import AutoModel, AutoTokenizer

        self.name = name_or_path
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path).to(device).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, hidden) mean-pooled embeddings; (0, hidden) for no texts."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    [str(t) for t in texts[start : start + self.batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state  # (b, t, h)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                chunks.append(pooled.float().cpu().numpy())
        hidden_size = self.model.config.hidden_size
        return np.concatenate(chunks) if chunks else np.zeros((0, hidden_size), dtype=np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) cosine similarity of matching rows of a and b (n, h); 0 where a vector is zero."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dots / norms, 0.0).clip(-1.0, 1.0)


def embedding_similarity(
    encoder: SentenceEncoder, predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> np.ndarray:
    """(n,) cosine of each prediction with its closest reference (max over references)."""
    pred_vecs = encoder.encode(list(predictions))
    flat_refs = [r for refs in references for r in refs]
    owner = np.repeat(np.arange(len(references)), [len(refs) for refs in references])
    ref_vecs = encoder.encode(flat_refs)
    sims = cosine_rows(pred_vecs[owner], ref_vecs) if len(flat_refs) else np.zeros(0)
    best = np.full(len(predictions), np.nan)
    np.fmax.at(best, owner, sims)
    return best
