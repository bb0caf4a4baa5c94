"""Leakage audit of the data stage: duplicate and near-duplicate images within and across splits.

leakage_audit:  results/data/{dataset}/source/{split}.parquet (unified rows, before filters)
                → results/data/{dataset}/leakage.json, results/data/{dataset}/leakage_pairs.csv

Every image is decoded once and fingerprinted twice:
- exact: SHA-256 of the decoded pixels (RGB, native size). The same picture saved as PNG and
  as a lossless WebP/TIFF, or under two file names, has one digest; two different images with
  the same file size do not (file bytes are never hashed).
- near: a perceptual hash from ``imagehash`` (``phash`` by default, ``hash_size``² bits) of the
  decoded image. Two images are near duplicates when the Hamming distance of their hashes is at
  most ``threshold`` bits; resizing, JPEG recompression and slight crops move a 64-bit pHash by
  a few bits, unrelated photographs by ~32.

Cost: reading streams the parquet by record batch (memory ∝ batch, plus a few dozen bytes of
hash per image). The near-duplicate search is all-pairs, but vectorised: hashes are packed in
uint64 words and compared block by block (XOR + popcount in numpy), n²/2 · words operations in
C with at most ``BLOCK_ELEMENTS`` words in memory; 80k images (ROCOv2) take about 20 s on one
core. Pairs are kept only up to the threshold.

leakage.json = {"dataset", "hash": {exact, near, hash_size, bits, threshold}, "images": {split: n},
"rows": {split: n}, "pairs": {"train-test": {"exact", "near", "images_a", "images_b"}, ...},
"affected": {"val"|"test": {images, image_ids, rows, share [, question_ids, same_question,
same_question_same_answer]}}}: the val/test rows whose image duplicates (exact or near) a train
image, and for VQA how many of those questions (normalised) were asked of a duplicated train
image too, and with the same (normalised) answer. Caption datasets: image pairs and rows only.
leakage_pairs.csv: split_a, image_id_a, split_b, image_id_b, kind (exact | near), distance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medvqa.data.answers import normalise_answer
from medvqa.data.schema import SPLITS, read_text_columns, task_of
from medvqa.io import read_batches, write_csv, write_json
from medvqa.spec import Spec, check_choice, check_range

log = logging.getLogger(__name__)

# Config name → imagehash function (imported when hashing: checking a config stays light).
HASHES = {"phash": "phash", "dhash": "dhash", "ahash": "average_hash", "whash": "whash"}
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], np.uint8)
PAIR_COLUMNS = ("split_a", "image_id_a", "split_b", "image_id_b", "kind", "distance")
BLOCK_ELEMENTS = 1 << 23  # uint64 words per XOR block (64 MiB), whatever the dataset size
BATCH_ROWS = 64  # parquet rows decoded at a time
_PUNCT = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class LeakageSpec(Spec):
    hash: str = "phash"  # perceptual hash of the near-duplicate search (HASHES)
    hash_size: int = 8  # hash side: hash_size² bits
    threshold: int = 6  # most differing bits of a near-duplicate pair

    def validate(self, where: str) -> None:
        check_choice(where, "hash", self.hash, tuple(HASHES))
        check_range(where, "hash_size", self.hash_size, 4, 32)
        if self.hash == "whash" and self.hash_size & (self.hash_size - 1):
            check_choice(where, "hash_size (whash needs a power of 2)", self.hash_size, (4, 8, 16, 32))
        check_range(where, "threshold", self.threshold, 0, self.hash_size**2 // 4)


def normalise_question(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: 'Is this a CT?' == 'is this a ct'."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", str(text).lower())).strip()


def fingerprint(data: bytes, spec: LeakageSpec) -> tuple[str, np.ndarray]:
    """(SHA-256 hex of the decoded RGB pixels, perceptual hash bits as a bool vector)."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    import imagehash

    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()
    bits = getattr(imagehash, HASHES[spec.hash])(rgb, hash_size=spec.hash_size).hash.reshape(-1)
    return digest, bits


def _image_batches(path: str | Path) -> Iterator[tuple[list, list]]:
    for batch in read_batches(path, ["image_id", "image"], BATCH_ROWS):
        yield batch.column("image_id").to_pylist(), batch.column("image").to_pylist()


def fingerprint_splits(split_paths: Mapping[str, str | Path], spec: LeakageSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (split, image_id): split, image_id, digest; and the packed hash words
    (n_images, words) uint64. Streams each parquet by record batch."""
    keys, digests, hashes = [], [], []
    for split, path in split_paths.items():
        seen = set()
        for ids, images in _image_batches(path):
            for image_id, data in zip(ids, images):
                if image_id in seen:
                    continue  # several questions on one image
                seen.add(image_id)
                digest, bits = fingerprint(data, spec)
                keys.append((split, str(image_id)))
                digests.append(digest)
                hashes.append(np.packbits(bits))
    table = pd.DataFrame(keys, columns=["split", "image_id"]).assign(digest=digests)
    n_bytes = -(-spec.hash_size**2 // 64) * 8  # pad to whole uint64 words
    packed = np.zeros((len(hashes), n_bytes), np.uint8)
    for i, h in enumerate(hashes):
        packed[i, : len(h)] = h
    return table, packed.view(np.uint64)


def near_pairs(words: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) of every i < j with Hamming distance <= threshold; words: (n, w) uint64."""
    n, w = words.shape
    block = max(1, BLOCK_ELEMENTS // max(1, n * w))
    found_i, found_j, found_d = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        xor = words[start:stop, None, :] ^ words[None, start:, :]
        distance = _popcount(xor).sum(axis=2, dtype=np.int32)
        rows, cols = np.nonzero(distance <= threshold)
        upper = start + rows < start + cols  # cols index from `start`: keep j > i only
        found_i.append(start + rows[upper])
        found_j.append(start + cols[upper])
        found_d.append(distance[rows[upper], cols[upper]])
    if not found_i:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.int32)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per uint64 word (numpy >= 2 has it built in; else a byte lookup table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    return _BYTE_BITS[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


def find_pairs(table: pd.DataFrame, words: np.ndarray, spec: LeakageSpec) -> pd.DataFrame:
    """Every duplicate pair as PAIR_COLUMNS, split_a no later than split_b in SPLITS order.
    kind is 'exact' (same decoded pixels) or 'near' (hash distance <= threshold only)."""
    i, j, distance = near_pairs(words, spec.threshold)
    pairs = {(a, b): int(d) for a, b, d in zip(i.tolist(), j.tolist(), distance.tolist())}
    # Equal pixels give equal hashes, but list exact pairs explicitly so no threshold hides them.
    for members in table.groupby("digest").indices.values():
        for a, b in itertools.combinations(sorted(members.tolist()), 2):
            pairs.setdefault((a, b), 0)
    order = {split: k for k, split in enumerate(SPLITS)}
    rows = []
    for (a, b), d in sorted(pairs.items()):
        ra, rb = table.iloc[a], table.iloc[b]
        if order[ra.split] > order[rb.split]:
            ra, rb = rb, ra
        kind = "exact" if ra.digest == rb.digest else "near"
        rows.append((order[ra.split], order[rb.split], ra.split, ra.image_id, rb.split, rb.image_id, kind, d))
    return pd.DataFrame([r[2:] for r in sorted(rows)], columns=list(PAIR_COLUMNS))


def pair_counts(pairs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per split pair ('train-test', 'train-train', ...): exact and near pairs, and the distinct
    images of each side involved."""
    counts = {}
    for (a, b), group in pairs.groupby(["split_a", "split_b"], sort=False):
        kinds = group["kind"].value_counts()
        counts[f"{a}-{b}"] = {
            "exact": int(kinds.get("exact", 0)), "near": int(kinds.get("near", 0)),
            "images_a": int(group["image_id_a"].nunique()), "images_b": int(group["image_id_b"].nunique()),
        }
    order = [f"{a}-{b}" for a, b in itertools.combinations_with_replacement(SPLITS, 2)]
    return {key: counts[key] for key in order if key in counts}


def train_partners(pairs: pd.DataFrame, split: str) -> dict[str, set[str]]:
    """{image of ``split``: the train images it duplicates}."""
    cross = pairs[(pairs["split_a"] == "train") & (pairs["split_b"] == split)]
    partners: dict[str, set[str]] = {}
    for a, b in zip(cross["image_id_a"], cross["image_id_b"]):
        partners.setdefault(b, set()).add(a)
    return partners


def affected_rows(rows: pd.DataFrame, train: pd.DataFrame, partners: Mapping[str, set[str]]) -> dict:
    """Rows of a val/test split on an image that duplicates a train image, and (VQA) how many of
    them ask a question also asked on a duplicated train image, and with the same answer."""
    hit = rows[rows["image_id"].astype(str).isin(partners)]
    out = {"images": len(partners), "image_ids": sorted(partners), "rows": len(hit),
           "share": len(hit) / len(rows) if len(rows) else 0.0}
    if task_of(rows) == "vqa":
        asked = {}
        for image_id, question, answer in zip(train["image_id"].astype(str), train["question"], train["answer"]):
            asked.setdefault((image_id, normalise_question(question)), set()).add(normalise_answer(answer))
        same_q = same_qa = 0
        for image_id, question, answer in zip(hit["image_id"].astype(str), hit["question"], hit["answer"]):
            answers = set().union(*(asked.get((p, normalise_question(question)), set()) for p in partners[image_id]))
            same_q += bool(answers)
            same_qa += normalise_answer(answer) in answers
        out.update(question_ids=sorted(hit["question_id"].astype(str)), same_question=same_q,
                   same_question_same_answer=same_qa)
    return out


def audit(spec: LeakageSpec, dataset: str, split_paths: Mapping[str, str | Path],
          out_json: str | Path, out_pairs: str | Path) -> dict:
    """Fingerprint every split's images, find duplicate pairs, count affected val/test rows."""
    table, words = fingerprint_splits(split_paths, spec)
    pairs = find_pairs(table, words, spec)
    texts = {split: read_text_columns(path) for split, path in split_paths.items()}
    report = {
        "dataset": dataset,
        "hash": {"exact": "sha256 of decoded RGB pixels", "near": f"imagehash.{HASHES[spec.hash]}",
                 "hash_size": spec.hash_size, "bits": spec.hash_size**2, "threshold": spec.threshold},
        "images": {split: int((table["split"] == split).sum()) for split in split_paths},
        "rows": {split: len(rows) for split, rows in texts.items()},
        "pairs": pair_counts(pairs),
        "affected": {
            split: affected_rows(texts[split], texts["train"], train_partners(pairs, split))
            for split in ("val", "test") if split in texts and "train" in texts
        },
    }
    write_csv(pairs, out_pairs)
    write_json(report, out_json)
    _log_verdict(dataset, report)
    return report


def duplicated_images(report: Mapping, split: str) -> frozenset[str]:
    """The image ids of a val/test split that duplicate a train image, from a leakage.json."""
    return frozenset(report["affected"].get(split, {}).get("image_ids", []))


def _log_verdict(dataset: str, report: dict) -> None:
    test = report["affected"].get("test")
    if test and test["images"]:
        log.warning("%s: %d test image(s) duplicate train images (same pixels, or %s distance <= %d): %d of %d "
                    "test rows (%.1f%%) are on them; see leakage.json", dataset, test["images"], report["hash"]["near"],
                    report["hash"]["threshold"], test["rows"], report["rows"]["test"], 100 * test["share"])
    log.info("%s: duplicate pairs per split pair: %s", dataset, report["pairs"] or "none")


def main(argv: list[str] | None = None) -> None:
    """``python -m medvqa.data.leakage --split train=a.parquet --split test=b.parquet ...``"""
    import argparse
    import json

    from medvqa.io import setup_logging

    parser = argparse.ArgumentParser(description="Audit split parquets for duplicate and near-duplicate images.")
    parser.add_argument("--split", action="append", required=True, metavar="NAME=PATH",
                        help=f"a unified split parquet; NAME one of {', '.join(SPLITS)} (repeat per split)")
    parser.add_argument("--dataset", default="dataset", help="name used in the report and log")
    parser.add_argument("--spec", default="{}", help='LeakageSpec keys as JSON, e.g. \'{"threshold": 4}\'')
    parser.add_argument("--out-json", required=True, help="leakage.json to write")
    parser.add_argument("--out-pairs", required=True, help="leakage_pairs.csv to write")
    args = parser.parse_args(argv)
    setup_logging(None)
    splits = dict(item.split("=", 1) for item in args.split)
    for name in splits:
        check_choice("--split", "name", name, SPLITS)
    spec = LeakageSpec.from_mapping(json.loads(args.spec), where="--spec")
    audit(spec, args.dataset, splits, args.out_json, args.out_pairs)


if __name__ == "__main__":
    main()
