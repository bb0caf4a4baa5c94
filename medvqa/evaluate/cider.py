"""CIDEr-D of the COCO caption evaluation, vectorised so that every bootstrap resample recomputes IDF.

Used by the ``coco`` caption protocol (``medvqa.evaluate.captions``); pure computation, no
files. pycocoevalcap's ``CiderScorer`` (tylin/coco-caption ``pycocoevalcap/cider/cider_scorer.py``)
weights each n-gram (n = 1..4) by tf * (log N - log max(1, df)), where df counts the images
of the scored set whose references contain the n-gram and N is the number of images; the
per-reference score is the clipped cosine min(h, r) * r / (|h| |r|) per order times a
Gaussian length penalty exp(-delta^2 / (2 sigma^2)), sigma = 6 (delta: difference of the
bigram counts, its own definition of length), averaged over orders and references, times 10.
All three sums are linear in w^2, so a resample is three sparse products: ``CiderD`` builds
the sparse matrices once and evaluates any image-count vector (n_images,) with IDF from that
resample's references, exactly as pycocoevalcap would score the resampled set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import sparse

SIGMA = 6.0
MAX_ORDER = 4
# Dense (n-grams x resamples) weight blocks are capped at this many cells (32 MiB of float64).
_BLOCK_CELLS = 1 << 22


def ngram_counts(sentence: str, max_order: int = MAX_ORDER) -> Counter:
    """n-gram (tuple) counts for n = 1..max_order of a space-separated sentence, as ``precook``."""
    words = sentence.split()
    return Counter(tuple(words[i : i + k]) for k in range(1, max_order + 1) for i in range(len(words) - k + 1))


class CiderD:
    """CIDEr-D of hypotheses ``hyps`` (one tokenised string per image) against ``refs`` (lists)."""

    def __init__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]], sigma: float = SIGMA):
        if len(hyps) != len(refs) or any(len(r) == 0 for r in refs):
            raise ValueError("CIDEr-D needs one hypothesis and at least one reference per image")
        self.n = len(hyps)
        index: dict[tuple, int] = {}
        hyp_counts = [ngram_counts(h) for h in hyps]
        ref_counts = [[ngram_counts(r) for r in rs] for rs in refs]
        df_rows, df_cols = [], []
        for i, counts in enumerate(ref_counts):
            seen = {index.setdefault(g, len(index)) for c in counts for g in c}
            df_rows.extend([i] * len(seen))
            df_cols.extend(seen)
        for counts in hyp_counts:
            for g in counts:
                index.setdefault(g, len(index))
        self.n_grams = len(index)
        self.df_matrix = sparse.csr_matrix(
            (np.ones(len(df_rows)), (df_rows, df_cols)), shape=(self.n, self.n_grams)
        )
        self._build(hyp_counts, ref_counts, index, sigma)

    def _build(self, hyp_counts, ref_counts, index, sigma) -> None:
        num, ref_norm, hyp_norm = ([], [], []), ([], [], []), ([], [], [])
        pairs, image_of_pair, penalty = 0, [], []
        for i, (hyp, refs) in enumerate(zip(hyp_counts, ref_counts)):
            for g, tf in hyp.items():
                _add(hyp_norm, i * MAX_ORDER + len(g) - 1, index[g], tf * tf)
            hyp_len = sum(tf for g, tf in hyp.items() if len(g) == 2)
            for ref in refs:
                for g, tf in ref.items():
                    row = pairs * MAX_ORDER + len(g) - 1
                    _add(ref_norm, row, index[g], tf * tf)
                    if g in hyp:
                        _add(num, row, index[g], min(hyp[g], tf) * tf)
                ref_len = sum(tf for g, tf in ref.items() if len(g) == 2)
                penalty.append(np.exp(-((hyp_len - ref_len) ** 2) / (2 * sigma**2)))
                image_of_pair.append(i)
                pairs += 1
        shape = (pairs * MAX_ORDER, self.n_grams)
        self.num, self.ref_norm = _matrix(num, shape), _matrix(ref_norm, shape)
        self.hyp_norm = _matrix(hyp_norm, (self.n * MAX_ORDER, self.n_grams))
        self.penalty = np.asarray(penalty)
        self.image_of_pair = np.asarray(image_of_pair)
        self.refs_per_image = np.bincount(self.image_of_pair, minlength=self.n)

    def image_scores(self, counts: np.ndarray) -> np.ndarray:
        """(n_images, B) CIDEr-D of each image under each of B resamples (counts: (B, n_images)).

        IDF uses the references of the resampled set, an image drawn k times counting k times
        (pycocoevalcap would see it k times); the corpus score is counts @ scores / n.
        """
        counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        df = np.asarray(self.df_matrix.T @ counts.T)  # (G, B)
        log_n = np.log(counts.sum(axis=1))  # (B,)
        weight = log_n[None, :] - np.log(np.maximum(1.0, df))
        squared = weight * weight
        num = np.asarray(self.num @ squared)
        ref = np.sqrt(np.asarray(self.ref_norm @ squared))
        hyp = np.sqrt(np.asarray(self.hyp_norm @ squared))
        hyp = hyp.reshape(self.n, MAX_ORDER, -1)[self.image_of_pair].reshape(ref.shape)
        denominator = hyp * ref
        value = np.divide(num, denominator, out=num.copy(), where=denominator != 0)
        per_pair = value.reshape(len(self.penalty), MAX_ORDER, -1).mean(axis=1) * self.penalty[:, None]
        per_image = np.zeros((self.n, per_pair.shape[1]))
        np.add.at(per_image, self.image_of_pair, per_pair)
        return 10.0 * per_image / self.refs_per_image[:, None]

    def corpus(self, counts: np.ndarray) -> np.ndarray:
        """(B,) corpus CIDEr-D (mean over the drawn images) of resample counts (B, n_images)."""
        counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        block = max(1, _BLOCK_CELLS // max(self.n_grams, 1))
        parts = []
        for start in range(0, len(counts), block):
            chunk = counts[start : start + block]
            parts.append((chunk * self.image_scores(chunk).T).sum(axis=1) / chunk.sum(axis=1))
        return np.concatenate(parts)


def _add(triplets, row: int, col: int, value: float) -> None:
    triplets[0].append(row)
    triplets[1].append(col)
    triplets[2].append(value)


def _matrix(triplets, shape) -> sparse.csr_matrix:
    rows, cols, values = triplets
    return sparse.csr_matrix((np.asarray(values, dtype=np.float64), (rows, cols)), shape=shape)
