"""The unified row schemas every dataset source produces (see DESIGN.md).

VQA row:     question_id, image_id, image (encoded bytes), question, answer,
             answer_type ('closed' | 'open'), split  [+ modality, organ, q_lang, content_type]
Caption row: image_id, image, caption, split  [+ cui]

``check_rows`` enforces the schema on a source's output. Bad rows (missing/corrupt image,
empty text, duplicate id) raise ``BadSampleError`` naming dataset, split, row id and reason,
or with ``on_bad_sample='skip'`` are dropped and returned for ``rejected.csv``.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

SPLITS = ("train", "val", "test")
VQA_COLUMNS = ("question_id", "image_id", "image", "question", "answer", "answer_type", "split")
CAPTION_COLUMNS = ("image_id", "image", "caption", "split")
OPTIONAL_COLUMNS = ("modality", "organ", "q_lang", "content_type", "cui")
ANSWER_TYPES = ("closed", "open")
REJECTED_COLUMNS = ("dataset", "split", "id", "reason")


class BadSampleError(ValueError):
    """A row that cannot be used; the message names dataset, split, row id and reason."""


def task_of(df: pd.DataFrame) -> str:
    """'vqa' when the rows carry questions, 'caption' when they carry only captions."""
    return "vqa" if "question" in df.columns else "caption"


def split_task(path) -> str:
    """``task_of`` a split parquet, from its schema alone."""
    return "vqa" if "question" in pq.read_schema(path).names else "caption"


def read_text_columns(path) -> pd.DataFrame:
    """A split parquet without its image bytes: ids and text columns only (fast)."""
    names = pq.read_schema(path).names
    wanted = ("question_id", "image_id", "question", "answer", "answer_type", "caption", *OPTIONAL_COLUMNS)
    return pd.read_parquet(path, columns=[c for c in wanted if c in names])


def image_problem(data: object) -> str | None:
    """Why ``data`` is not a decodable image, or None when it is."""
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        return "missing image"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception as exc:  # PIL raises many types for corrupt files
        return f"corrupt image ({type(exc).__name__}: {exc})"
    return None


def _row_problems(df: pd.DataFrame, id_col: str, text_cols: tuple[str, ...]) -> pd.Series:
    problems = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in text_cols:
        empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
        problems = problems.where(~empty | problems.notna(), f"empty {col}")
    if "answer_type" in df.columns:
        bad = ~df["answer_type"].isin(ANSWER_TYPES)
        problems = problems.where(~bad | problems.notna(), "answer_type not closed/open")
    duplicated = df[id_col].duplicated(keep="first")
    problems = problems.where(~duplicated | problems.notna(), f"duplicate {id_col}")
    images = df.drop_duplicates("image_id")["image"]
    bad_images = {df.at[i, "image_id"]: p for i, p in images.map(image_problem).items() if p}
    image_reason = df["image_id"].map(bad_images)
    return problems.where(problems.notna(), image_reason)


def check_rows(
    df: pd.DataFrame, dataset: str, split: str, on_bad_sample: str = "error"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate one split; return (good rows, rejected rows as REJECTED_COLUMNS)."""
    task = task_of(df)
    required = VQA_COLUMNS if task == "vqa" else CAPTION_COLUMNS
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BadSampleError(f"dataset {dataset!r} split {split!r}: missing column(s) {missing}")
    id_col = "question_id" if task == "vqa" else "image_id"
    text_cols = ("question", "answer") if task == "vqa" else ("caption",)
    df = df.reset_index(drop=True)
    problems = _row_problems(df, id_col, text_cols)
    bad = problems.notna()
    rejected = pd.DataFrame(
        {
            "dataset": dataset,
            "split": split,
            "id": df.loc[bad, id_col].astype(str),
            "reason": problems[bad],
        },
        columns=list(REJECTED_COLUMNS),
    )
    if bad.any() and on_bad_sample == "error":
        first = rejected.iloc[0]
        raise BadSampleError(
            f"dataset {dataset!r} split {split!r} row {id_col}={first['id']}: {first['reason']} "
            f"({int(bad.sum())} bad row(s) in total; set on_bad_sample: skip to drop and list them "
            "in rejected.csv)"
        )
    keep = [c for c in (*required, *OPTIONAL_COLUMNS) if c in df.columns]
    return df.loc[~bad, keep].reset_index(drop=True), rejected.reset_index(drop=True)
