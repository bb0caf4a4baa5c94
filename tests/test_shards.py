"""medvqa.inference.shards: a stable id-hash rule, and a merge that refuses gaps and overlaps."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from medvqa.inference.shards import merge_shards, shard_of, write_shard_rows


def test_the_shard_of_an_id_depends_on_the_id_alone():
    ids = [f"q{i}" for i in range(200)]
    shards = shard_of(ids, 4)
    assert set(shards.tolist()) == {0, 1, 2, 3}
    assert shard_of(ids[50:60], 4).tolist() == shards[50:60].tolist()  # other rows do not matter
    assert shards[7] == int(hashlib.sha1(b"q7").hexdigest(), 16) % 4


def test_shard_rows_partition_the_split(tmp_path):
    data = tmp_path / "test.parquet"
    pd.DataFrame({"question_id": [f"q{i}" for i in range(30)], "image_id": "i", "question": "?", "answer": "a"}
                 ).to_parquet(data)
    counts = [write_shard_rows(data, "question_id", k, 3, tmp_path / f"{k}.parquet") for k in range(3)]
    assert sum(counts) == 30 and min(counts) > 0
    with pytest.raises(ValueError, match="shard 3 is not in 0..2"):
        write_shard_rows(data, "question_id", 3, 3, tmp_path / "x.parquet")


def test_merge_orders_by_the_split_and_names_gaps_and_overlaps(tmp_path):
    data = tmp_path / "test.parquet"
    pd.DataFrame({"question_id": ["c", "a", "b"], "image_id": "i", "question": "?", "answer": "x"}).to_parquet(data)
    first, second = tmp_path / "0.parquet", tmp_path / "1.parquet"
    pd.DataFrame({"question_id": ["a"], "prediction": ["pa"]}).to_parquet(first)
    pd.DataFrame({"question_id": ["b", "c"], "prediction": ["pb", "pc"]}).to_parquet(second)
    merged = merge_shards([first, second], data, "question_id", tmp_path / "merged.parquet")
    assert merged["question_id"].tolist() == ["c", "a", "b"] and merged["prediction"].tolist() == ["pc", "pa", "pb"]
    with pytest.raises(ValueError, match=r"1 question_id\(s\) of .* are in no shard, e.g. 'a'"):
        merge_shards([second], data, "question_id", tmp_path / "m2.parquet")
    with pytest.raises(ValueError, match="question_id 'b' is in more than one shard"):
        merge_shards([first, second, second], data, "question_id", tmp_path / "m3.parquet")


def test_command_line_shards_are_k_of_n():
    from medvqa.inference.shards import parse_shard

    assert parse_shard("2/4") == (2, 4)
    for bad, message in (("4/4", "K must be in 0..N-1"), ("a/4", "expected K/N")):
        with pytest.raises(ValueError, match=message):
            parse_shard(bad)
