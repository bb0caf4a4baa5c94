"""``vqa_rad`` dataset source: the official VQA-RAD release (Lau et al. 2018, OSF).

Reads ``<path>/VQA_RAD Dataset Public.json`` (a JSON list of records with qid, image_name,
image_organ, question, answer (string or number), answer_type 'CLOSED'|'OPEN' (some with
trailing spaces), question_type, phrase_type 'freeform'|'para'|'frame'|'test_freeform'|
'test_para', ...) and the images ``<path>/VQA_RAD Image Folder/<image_name>``. Returns
unified VQA rows: the release's own answer_type (lower-cased) decides closed/open, so the
published closed/open subsets are used ("left or right?" questions are CLOSED there, though
their answer is not yes/no); phrase_type test_freeform / test_para form the test split (the
451-question test set papers report on), every other phrase type is train, and val is
carved from train by image (``unify.split_val_by_image``). qid → question_id, image_name →
image_id, image_organ → organ, question_type → content_type. ``attrs`` records both rules.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from medvqa.data.batches import RawRows, frame_batches, unify_raw
from medvqa.data.unify import reading, require_layout, resolve_columns
from medvqa.spec import Spec, check_range

VQA_RAD_URL = "https://osf.io/89kps/"
JSON_NAME = "VQA_RAD Dataset Public.json"
IMAGE_DIR = "VQA_RAD Image Folder"
TEST_PHRASE_TYPES = ("test_freeform", "test_para")
COLUMNS = {
    "question_id": "qid", "image_id": "image_name", "image": "image_name", "question": "question",
    "answer": "answer", "answer_type": "answer_type", "organ": "image_organ", "content_type": "question_type",
}
TEST_SPLIT_RULE = (
    "official VQA-RAD test set: phrase_type test_freeform or test_para is test, every other "
    "phrase_type (freeform, para, frame) is train"
)


@dataclasses.dataclass(frozen=True)
class VqaRadSourceSpec(Spec):
    """Options of the ``vqa_rad`` source (config ``datasets.<name>.options``)."""

    path: str  # the release folder holding "VQA_RAD Dataset Public.json" and "VQA_RAD Image Folder/"
    val_fraction: float = 0.1  # share of train images carved out as val (the release has no val)
    val_seed: int = 0  # seed of that carving

    def validate(self, where: str) -> None:
        check_range(where, "val_fraction", self.val_fraction, 0.0, 0.5)


def _check_layout(root: Path, dataset: str) -> None:
    require_layout(
        root, [JSON_NAME], IMAGE_DIR, f"dataset {dataset!r} (source vqa_rad)",
        f"Download the VQA-RAD release from {VQA_RAD_URL}, unpack it and set options.path to the folder "
        f"that holds '{JSON_NAME}' and '{IMAGE_DIR}/'. The hub copy (flaviagiammarino/vqa-rad) has no "
        f"answer types: it loads with source: hf, preset: vqa_rad instead.",
    )


def vqa_rad_raw_rows(spec: VqaRadSourceSpec, dataset: str) -> RawRows:
    """The release's raw records (image paths, not images), for ``medvqa.data.batches``."""
    root = Path(spec.path).expanduser()
    _check_layout(root, dataset)
    with reading(dataset, "vqa_rad", root / JSON_NAME):
        raw = pd.DataFrame(json.loads((root / JSON_NAME).read_text(encoding="utf-8")))
    phrase = raw["phrase_type"].astype(str).str.strip() if "phrase_type" in raw else pd.Series("", index=raw.index)
    raw["split"] = phrase.isin(TEST_PHRASE_TYPES).map({True: "test", False: "train"})
    where = f"datasets.{dataset}.options (vqa_rad source)"
    columns = resolve_columns(COLUMNS, {}, raw.columns, where)
    return RawRows(
        columns, frame_batches(raw), image_dir=root / IMAGE_DIR, val_fraction=spec.val_fraction,
        val_seed=spec.val_seed, attrs={"test_split_rule": TEST_SPLIT_RULE},
    )


def load_vqa_rad(spec: VqaRadSourceSpec, dataset: str) -> pd.DataFrame:
    """All VQA-RAD questions as unified VQA rows of train / val / test, in memory (see module docstring)."""
    return unify_raw(vqa_rad_raw_rows(spec, dataset), dataset)
