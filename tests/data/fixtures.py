"""On-disk dataset fixtures in the real formats, built under a test's tmp_path.

hub_layout:  <root>/data/<split>-00000-of-00001.parquet written by ``datasets`` with an
             ``Image`` feature, exactly what ``hf download`` of a parquet hub repo gives.
hub_cache:   a hub layout directory put into a huggingface_hub cache (HF_HUB_CACHE) as
             ``hf download <repo> --repo-type dataset`` leaves it: blobs/, snapshots/<commit>/
             (links to the blobs), refs/<ref>, so offline runs resolve the hub id from it.
slake_folder: <root>/Slake1.0/{train,validate,test}.json + imgs/xmlabN/source.jpg.
local tables: csv / jsonl / parquet with an ``images/`` folder beside them.
Images are tiny (8x8) PNG / JPEG files with distinct colours.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import datasets
import pandas as pd
from PIL import Image


def image_file_bytes(index: int, fmt: str = "PNG") -> bytes:
    """A distinct 8x8 image per index, encoded as ``fmt``."""
    colour = ((37 * index) % 256, (91 * index + 40) % 256, (53 * index + 90) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def write_hub_layout(root: Path, splits: dict[str, dict[str, list]], image_column: str = "image") -> Path:
    """Write {split: columns} as a hub parquet repo; ``image_column`` holds encoded bytes."""
    for split, columns in splits.items():
        columns = dict(columns)
        columns[image_column] = [{"bytes": b, "path": None} for b in columns[image_column]]
        ds = datasets.Dataset.from_dict(columns).cast_column(image_column, datasets.Image())
        out = root / "data" / f"{split}-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(out))
    return root


def hub_cache(cache: Path, repo_id: str, source: Path, ref: str = "main") -> str:
    """Put every file under ``source`` into the hub cache ``cache`` as commit ``<hash>`` of the
    dataset repo ``repo_id``, and point ``refs/<ref>`` at it; returns the commit hash. The layout
    is huggingface_hub's (``datasets--owner--name/{blobs,snapshots,refs}``; snapshot files are
    relative symlinks to blobs named by the file's sha256, as for LFS files)."""
    repo = cache / ("datasets--" + repo_id.replace("/", "--"))
    blobs = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blobs[path.relative_to(source)] = blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
    commit = hashlib.sha1("".join(f"{rel.as_posix()}:{blob.name}" for rel, blob in blobs.items()).encode()).hexdigest()
    for rel, blob in blobs.items():
        link = repo / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return commit


def vqa_rad_like(root: Path) -> dict[str, dict[str, list]]:
    """VQA-RAD layout: train + test only, image/question/answer, images shared by questions.

    train: 10 images x 2 questions; test: 3 images x 1 question."""
    train = {"image": [], "question": [], "answer": []}
    for i in range(10):
        for question, answer in (("is there a fracture?", "Yes" if i % 2 else "no."),
                                 ("what organ is shown?", "left  Lung")):
            train["image"].append(image_file_bytes(i))
            train["question"].append(question)
            train["answer"].append(answer)
    test = {
        "image": [image_file_bytes(20 + i) for i in range(3)],
        "question": ["is this normal?", "where is the mass?", "is it ct?"],
        "answer": ["NO", "right upper lobe", "yes"],
    }
    splits = {"train": train, "test": test}
    write_hub_layout(root, splits)
    return splits


def rocov2_like(root: Path) -> dict[str, dict[str, list]]:
    """ROCOv2 layout: train/validation/test with image, image_id, caption, cui (list)."""
    splits = {}
    for k, split in enumerate(("train", "validation", "test")):
        n = 3
        splits[split] = {
            "image": [image_file_bytes(10 * k + i, "JPEG") for i in range(n)],
            "image_id": [f"ROCOv2_2023_{split}_{i:06d}" for i in range(n)],
            "caption": [f"CT scan number {i} of the {split} set." for i in range(n)],
            "cui": [["C0040405", "C0817096"][: i + 1] for i in range(n)],
        }
    write_hub_layout(root, splits)
    return splits


def slake_record(qid: int, img: int, lang: str, question: str, answer: str, answer_type: str) -> dict:
    return {
        "img_id": img, "img_name": f"xmlab{img}/source.jpg", "question": question, "answer": answer,
        "q_lang": lang, "location": "Lung", "modality": "CT", "answer_type": answer_type,
        "base_type": "vqa", "content_type": "Organ", "triple": ["vhead", "_", "_"], "qid": qid,
    }


def slake_folder(root: Path, missing_image: int | None = None) -> Path:
    """A Slake1.0 folder: each split has 2 images with one en and one zh question each."""
    folder = root / "Slake1.0"
    qid = 0
    for k, name in enumerate(("train.json", "validate.json", "test.json")):
        records = []
        for img in (2 * k, 2 * k + 1):
            records.append(slake_record(qid, img, "en", "Is the lung healthy?", "No", "CLOSED"))
            records.append(slake_record(qid + 1, img, "zh", "肺部健康吗?", "否", "CLOSED"))
            qid += 2
            image_path = folder / "imgs" / f"xmlab{img}" / "source.jpg"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            if img != missing_image:
                image_path.write_bytes(image_file_bytes(img, "JPEG"))
        records[0].update(question="Which organ is shown?", answer="Lung", answer_type="OPEN")
        (folder / name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return folder


def local_rows(root: Path, n_train: int = 4) -> pd.DataFrame:
    """Rows with image paths relative to ``root`` (files in ``root/images``), a split column.

    Image 0 of test is referenced but never written (a missing file)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in (("train", n_train), ("valid", 2), ("test", 2)):
        for i in range(n):
            name = f"{split}_{i}.png"
            if (split, i) != ("test", 0):
                (images / name).write_bytes(image_file_bytes(len(rows)))
            rows.append({"qid": f"q{len(rows):03d}", "img": f"images/{name}", "q": f"is there a lesion {i}?",
                         "a": "yes" if i % 2 else "None", "fold": split})
    return pd.DataFrame(rows)
