"""``slake`` dataset source: the official SLAKE release folder.

Reads ``Slake1.0/train.json``, ``validate.json`` and ``test.json`` (JSON lists of records
with img_id, img_name such as "xmlab102/source.jpg", question, answer, q_lang 'en'|'zh',
answer_type 'OPEN'|'CLOSED', modality, location, content_type, qid, ...) and the images
``Slake1.0/imgs/<img_name>``. Returns unified VQA rows of all three splits: validate → val,
answer_type lower-cased, location → organ, qid → question_id, img_name → image_id; both
languages (the ``filters.language`` stage keeps English by default). A missing image file gives ``image = b""``
(reported later by ``schema.check_rows`` with its path); a file that is not UTF-8 JSON fails
naming the file, line and column.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from medvqa.data.batches import RawRows, frame_batches, unify_raw
from medvqa.data.unify import reading, require_layout, resolve_columns
from medvqa.spec import Spec

SLAKE_URL = "https://www.med-vqa.com/slake/"
SPLIT_FILES = {"train": "train.json", "val": "validate.json", "test": "test.json"}
COLUMNS = {
    "question_id": "qid", "image_id": "img_name", "image": "img_name", "question": "question",
    "answer": "answer", "answer_type": "answer_type", "q_lang": "q_lang", "modality": "modality",
    "organ": "location", "content_type": "content_type",
}


@dataclasses.dataclass(frozen=True)
class SlakeSourceSpec(Spec):
    """Options of the ``slake`` source (config ``datasets.<name>.options``)."""

    path: str                  # the Slake1.0 folder (train/validate/test.json + imgs/)


def _check_layout(root: Path, dataset: str) -> None:
    require_layout(
        root, list(SPLIT_FILES.values()), "imgs", f"dataset {dataset!r} (source slake)",
        f"Download the SLAKE release from the official site {SLAKE_URL}, unpack it and set options.path "
        f"to the Slake1.0 folder that holds train.json, validate.json, test.json and imgs/. Parquet "
        f"mirrors on the hub load with source: hf, preset: slake instead.",
    )


def slake_raw_rows(spec: SlakeSourceSpec, dataset: str) -> RawRows:
    """The three SLAKE splits' raw records (image paths, not images), for ``medvqa.data.batches``."""
    root = Path(spec.path).expanduser()
    _check_layout(root, dataset)
    frames = []
    for split, name in SPLIT_FILES.items():
        with reading(dataset, "slake", root / name):
            frames.append(pd.DataFrame(json.loads((root / name).read_text(encoding="utf-8"))).assign(split=split))
    raw = pd.concat(frames, ignore_index=True)
    where = f"datasets.{dataset}.options (slake source)"
    columns = resolve_columns(COLUMNS, {}, raw.columns, where)
    return RawRows(columns, frame_batches(raw), image_dir=root / "imgs")


def load_slake(spec: SlakeSourceSpec, dataset: str) -> pd.DataFrame:
    """All three SLAKE splits as unified VQA rows, in memory (see module docstring)."""
    return unify_raw(slake_raw_rows(spec, dataset), dataset)
