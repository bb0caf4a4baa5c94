"""Reading and aligning the scoring stage's inputs.

Reads a data split (``results/data/{dataset}/{split}.parquet``, without the image bytes)
and a predictions / captions parquet, and joins them on the item id; and a LLaVA-Med
candidate-answer file. Any mismatch is an
error that names the ids: a missing prediction would otherwise silently raise accuracy,
and a prediction for an unknown id means predictions and data come from different splits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from medvqa.evaluate.reference_scores import llava_med_candidates
from medvqa.provenance import file_sha256

VQA_DATA_COLUMNS = ("question_id", "answer", "answer_type")
# image_id (when the split has it) is the unit of the image-level bootstrap.
OPTIONAL_VQA_DATA_COLUMNS = ("image_id",)
CAPTION_DATA_COLUMNS = ("image_id", "caption")
PREDICTION_COLUMNS = ("question_id", "prediction")
OPTIONAL_PREDICTION_COLUMNS = ("confidence", "samples", "answer_prob", "answer_prob_mean")
GENERATED_COLUMNS = ("image_id", "generated")
_SHOW = 5  # ids quoted in an error message


class AlignmentError(ValueError):
    """Predictions and data do not cover the same ids; the message names them."""


def columns_of(path: str | os.PathLike) -> list[str]:
    return list(pq.read_schema(path).names)


def read_columns(
    path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = (), what: str = "file"
) -> pd.DataFrame:
    """Read ``required`` (error if absent) and whichever ``optional`` columns exist."""
    names = columns_of(path)
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(f"{what} {os.fspath(path)!r} lacks column(s) {missing}; it has {names}")
    return pd.read_parquet(path, columns=[*required, *(c for c in optional if c in names)])


def as_text(value: object) -> str:
    """A prediction cell as text: null (None / NaN / pd.NA) becomes '' (an empty answer)."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _quote(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:_SHOW])
    return shown + (f" ... ({len(ids)} in total)" if len(ids) > _SHOW else "")


def align(
    data: pd.DataFrame, predictions: pd.DataFrame, id_col: str, what: str = "prediction"
) -> pd.DataFrame:
    """Join ``predictions`` onto ``data`` by ``id_col``, keeping the data's row order.

    ``data`` may repeat an id (several reference captions of one image); ``predictions``
    must hold each id exactly once, and both must cover the same set of ids.
    """
    data = data.assign(**{id_col: data[id_col].astype(str)})
    predictions = predictions.assign(**{id_col: predictions[id_col].astype(str)})
    duplicated = predictions.loc[predictions[id_col].duplicated(), id_col].unique()
    if len(duplicated):
        raise AlignmentError(f"more than one {what} for {id_col} {_quote(duplicated)}")
    known = set(data[id_col])
    unknown = [i for i in predictions[id_col] if i not in known]
    if unknown:
        raise AlignmentError(f"{what}(s) for {id_col} not in the data split: {_quote(unknown)}")
    have = set(predictions[id_col])
    missing = list(dict.fromkeys(i for i in data[id_col] if i not in have))
    if missing:
        raise AlignmentError(f"no {what} for {id_col} {_quote(missing)}")
    return data.merge(predictions, on=id_col, how="left", validate="many_to_one")


def read_vqa(
    data_path: str | os.PathLike, predictions_path: str | os.PathLike, group_columns: Sequence[str]
) -> pd.DataFrame:
    """Aligned VQA rows: data columns (answer, answer_type, present group columns) + predictions.

    Output columns: question_id, answer, answer_type, image_id (if the split has it), *groups,
    prediction (str, '' for null), and whichever of confidence, answer_prob, answer_prob_mean
    (float, NaN allowed) and samples exist.
    """
    optional = [*OPTIONAL_VQA_DATA_COLUMNS, *(c for c in group_columns if c not in OPTIONAL_VQA_DATA_COLUMNS)]
    data = read_columns(data_path, VQA_DATA_COLUMNS, optional, what="data split")
    bad = sorted(set(data["answer_type"]) - {"closed", "open"})
    if bad:
        raise ValueError(
            f"data split {os.fspath(data_path)!r}: answer_type values {bad} are not 'closed'/'open'"
        )
    preds = read_columns(
        predictions_path, PREDICTION_COLUMNS, OPTIONAL_PREDICTION_COLUMNS, what="predictions"
    )
    merged = align(data, preds, "question_id")
    merged["prediction"] = merged["prediction"].map(as_text)
    for col in ("confidence", "answer_prob", "answer_prob_mean"):
        if col in merged:
            merged[col] = merged[col].astype(np.float64)
    return merged.reset_index(drop=True)


def read_captions(data_path: str | os.PathLike, captions_path: str | os.PathLike) -> pd.DataFrame:
    """One row per image: image_id, references (list of captions), generated (str)."""
    data = read_columns(data_path, CAPTION_DATA_COLUMNS, what="data split")
    generated = read_columns(captions_path, GENERATED_COLUMNS, what="captions")
    merged = align(data, generated, "image_id", what="generated caption")
    merged["generated"] = merged["generated"].map(as_text)
    grouped = merged.groupby("image_id", sort=False).agg(
        references=("caption", list), generated=("generated", "first")
    )
    return grouped.reset_index()


def read_candidates(path) -> tuple[str, ...]:
    """The answers of a LLaVA-Med candidate file (JSON ``{"0": [answers]}``); errors name the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"LLaVA-Med candidate file {os.fspath(path)}: {error}") from None
    return llava_med_candidates(raw, f"LLaVA-Med candidate file {os.fspath(path)}")


def candidates_block(path, candidates: Sequence[str] | None) -> dict[str, Any]:
    """What the metrics JSON says of the LLaVA-Med candidate file used (or that none was)."""
    if path is None:
        return {"file": None, "note": "no candidate file configured: llava_med has no open_accuracy"}
    return {"file": os.fspath(path), "sha256": file_sha256(path), "answers": len(candidates)}
