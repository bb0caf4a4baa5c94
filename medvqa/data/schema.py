"""The unified row schemas every dataset source produces (see DESIGN.md).

VQA row:     question_id, image_id, image (encoded bytes), question, answer,
             answer_type ('closed' | 'open'), split  [+ modality, organ, q_lang, content_type]
Caption row: image_id, image, caption, split  [+ cui]

``check_rows`` enforces the schema on a source's output. A reason is a kind ("missing image"),
then any detail in parentheses ("(no file '/data/x.png')"), and the same on every run. Bad rows (missing/corrupt image,
empty text, duplicate id within or across splits) raise ``BadSampleError`` naming dataset, split, row id and reason,
or with ``on_bad_sample='skip'`` are dropped and returned for ``rejected.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd
import pyarrow.parquet as pq
from PIL import UnidentifiedImageError

from medvqa.data.images import decode_rgb
from medvqa.paths import SPLITS  # the {split} vocabulary of the path grammar

VQA_COLUMNS = ("question_id", "image_id", "image", "question", "answer", "answer_type", "split")
CAPTION_COLUMNS = ("image_id", "image", "caption", "split")
OPTIONAL_COLUMNS = ("modality", "organ", "q_lang", "content_type", "cui")
ANSWER_TYPES = ("closed", "open")
REJECTED_COLUMNS = ("dataset", "split", "id", "reason")
# Set by ``unify.unify_rows`` when it could not read an image cell (file missing, path outside
# the image folder); the reason names the path. Dropped from the written rows.
IMAGE_PROBLEM = "image_problem"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


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
    """Why ``data`` is not a decodable image, or None when it is. The image is decoded exactly
    as the image cache will decode it, and the reason is the same on every run (no addresses)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        return "missing image"
    try:
        decode_rgb(bytes(data))
    except UnidentifiedImageError:
        return "corrupt image (not an image format PIL can read)"
    except Exception as exc:  # PIL raises many types for corrupt files
        # Messages may embed object reprs ("<_io.BytesIO object at 0x7f...>"), which differ per run.
        return f"corrupt image ({type(exc).__name__}: {_ADDRESS.sub('>', str(exc))})"
    return None


def _row_problems(
    df: pd.DataFrame, id_col: str, text_cols: tuple[str, ...], taken: Mapping[str, str] | None,
    seen: set[str], image_reasons: dict[str, str | None],
) -> pd.Series:
    problems = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in text_cols:
        empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
        problems = problems.where(~empty | problems.notna(), f"empty {col}")
    if "answer_type" in df.columns:
        bad = ~df["answer_type"].isin(ANSWER_TYPES)
        problems = problems.where(~bad | problems.notna(), "answer_type not closed/open")
    duplicated = df[id_col].duplicated(keep="first") | df[id_col].isin(seen)
    seen.update(df[id_col])
    problems = problems.where(~duplicated | problems.notna(), f"duplicate {id_col}")
    if taken:
        elsewhere = df[id_col].astype(str).map(taken)
        also = f"duplicate {id_col} (also in split " + elsewhere + ")"
        problems = problems.where(elsewhere.isna() | problems.notna(), also)
    # The first row of an image decides its reason (decoded once per split).
    images = df.drop_duplicates("image_id")
    images = images[~images["image_id"].isin(image_reasons)]
    reasons = images["image"].map(image_problem)
    if IMAGE_PROBLEM in images:
        reasons = images[IMAGE_PROBLEM].where(images[IMAGE_PROBLEM].notna(), reasons)
    image_reasons.update({df.at[i, "image_id"]: p if isinstance(p, str) and p else None for i, p in reasons.items()})
    image_reason = df["image_id"].map(lambda i: image_reasons.get(i))
    return problems.where(problems.notna(), image_reason)


def bad_sample_error(rejected: pd.DataFrame, dataset: str, split: str, id_col: str) -> BadSampleError:
    """The error for a split with rejected rows (``REJECTED_COLUMNS``) under on_bad_sample: error."""
    first = rejected.iloc[0]
    return BadSampleError(
        f"dataset {dataset!r} split {split!r} row {id_col}={first['id']}: {first['reason']} "
        f"({len(rejected)} bad row(s) in total; set on_bad_sample: skip to drop and list them "
        "in rejected.csv)"
    )


def check_rows(
    df: pd.DataFrame, dataset: str, split: str, on_bad_sample: str = "error",
    taken: Mapping[str, str] | None = None, seen: set[str] | None = None,
    image_reasons: dict[str, str | None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate one split; return (good rows, rejected rows as REJECTED_COLUMNS).

    ``taken`` maps row ids already used by earlier splits to their split: a question id may
    name one question of one split only (predictions and metrics are keyed by it). A split read
    in batches passes the same ``seen`` (ids of its earlier batches, updated here) and
    ``image_reasons`` (image_id → reason or None, updated here) to every batch."""
    task = task_of(df)
    required = VQA_COLUMNS if task == "vqa" else CAPTION_COLUMNS
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BadSampleError(f"dataset {dataset!r} split {split!r}: missing column(s) {missing}")
    id_col = "question_id" if task == "vqa" else "image_id"
    text_cols = ("question", "answer") if task == "vqa" else ("caption",)
    df = df.reset_index(drop=True)
    seen = set() if seen is None else seen
    problems = _row_problems(df, id_col, text_cols, taken, seen, {} if image_reasons is None else image_reasons)
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
        raise bad_sample_error(rejected, dataset, split, id_col)
    keep = [c for c in (*required, *OPTIONAL_COLUMNS) if c in df.columns]
    return df.loc[~bad, keep].reset_index(drop=True), rejected.reset_index(drop=True)
