"""Bad-input handling of the unified schema: every reason, in error and skip mode."""

import pandas as pd
import pytest

from builders import png_bytes, vqa_rows
from medvqa.data.schema import BadSampleError, check_rows


def test_clean_rows_pass_unchanged():
    rows = vqa_rows()
    good, rejected = check_rows(rows, "demo", "train")
    assert len(good) == len(rows) and rejected.empty
    assert list(good.columns[:7]) == ["question_id", "image_id", "image", "question", "answer", "answer_type", "split"]


def _break(rows: pd.DataFrame, how: str) -> tuple[pd.DataFrame, str, str]:
    rows = rows.copy()
    if how == "corrupt image":
        rows.loc[rows["image_id"] == rows.at[0, "image_id"], "image"] = b"\x89PNG not really"
        return rows, rows.at[0, "question_id"], "corrupt image"
    if how == "missing image":
        rows.loc[rows["image_id"] == rows.at[0, "image_id"], "image"] = b""
        return rows, rows.at[0, "question_id"], "missing image"
    if how == "empty question":
        rows.at[4, "question"] = "   "
        return rows, rows.at[4, "question_id"], "empty question"
    if how == "empty answer":
        rows.at[5, "answer"] = None
        return rows, rows.at[5, "question_id"], "empty answer"
    rows.at[7, "question_id"] = rows.at[6, "question_id"]
    return rows, rows.at[7, "question_id"], "duplicate question_id"


REASONS = ["corrupt image", "missing image", "empty question", "empty answer", "duplicate"]


@pytest.mark.parametrize("how", REASONS)
def test_bad_row_fails_naming_dataset_split_row_and_reason(how):
    rows, row_id, reason = _break(vqa_rows(), how)
    with pytest.raises(BadSampleError) as err:
        check_rows(rows, "vqa_rad", "test")
    message = str(err.value)
    assert "'vqa_rad'" in message and "'test'" in message and row_id in message and reason in message


@pytest.mark.parametrize("how", REASONS)
def test_skip_drops_and_lists_bad_rows(how):
    rows, row_id, reason = _break(vqa_rows(), how)
    good, rejected = check_rows(rows, "vqa_rad", "test", on_bad_sample="skip")
    assert row_id in set(rejected["id"])
    assert rejected["reason"].str.contains(reason).all()
    assert len(good) + len(rejected) == len(rows)
    assert set(rejected.columns) == {"dataset", "split", "id", "reason"}
    if how == "duplicate":  # the first occurrence stays
        assert (good["question_id"] == row_id).sum() == 1


def test_missing_column_is_named():
    with pytest.raises(BadSampleError, match="answer_type"):
        check_rows(vqa_rows().drop(columns="answer_type"), "d", "train")


def test_caption_rows_checked_by_image_id():
    rows = pd.DataFrame(
        {"image_id": ["a", "a"], "image": [png_bytes(), png_bytes()], "caption": ["x", "y"], "split": "train"}
    )
    with pytest.raises(BadSampleError, match="duplicate image_id"):
        check_rows(rows, "caps", "train")
