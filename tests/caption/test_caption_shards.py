"""Sharded captioning: the shards, one of them stopped and resumed, merge into the unsharded file."""

from __future__ import annotations

import pandas as pd
import pytest

from medvqa.inference.caption import CaptionSpec, run_captioning
from medvqa.inference.shards import merge_shards, shard_of

COMPARED = ["image_id", "caption", "generated", "model"]  # chunk and seconds_per_image are per job


def _spec(checkpoint) -> CaptionSpec:
    return CaptionSpec.from_mapping({"kind": "blip", "checkpoint": str(checkpoint), "batch_size": 2,
                                     "chunk_size": 2, "max_new_tokens": 8})


def _run(spec, split, out, **kwargs):
    return run_captioning(spec, split["data"], split["images"], split["image_ids"], out, model_name="m", **kwargs)


@pytest.mark.parametrize("n_shards", [2, 3])
def test_merged_shards_equal_the_unsharded_captions(caption_split, sharp_blip_dir, tmp_path, n_shards):
    spec = _spec(sharp_blip_dir)
    whole = _run(spec, caption_split, tmp_path / "whole.parquet")
    assert whole.complete
    expected = pd.read_parquet(tmp_path / "whole.parquet")
    shards = [tmp_path / f"test.{k}.parquet" for k in range(n_shards)]
    stopped = _run(spec, caption_split, shards[0], shard=(0, n_shards), max_chunks=1)  # a job killed mid-shard
    assert not stopped.complete and not shards[0].exists()
    for k, path in enumerate(shards):
        run = _run(spec, caption_split, path, shard=(k, n_shards))
        assert run.complete
        assert run.reused == (2 if k == 0 else 0)  # the stopped shard kept its finished chunk
    ids = pd.read_parquet(shards[1])["image_id"]
    assert (shard_of(ids, n_shards) == 1).all()
    merged = merge_shards(shards, caption_split["data"], "image_id", tmp_path / "test.parquet")
    pd.testing.assert_frame_equal(merged[COMPARED], expected[COMPARED])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "test.parquet")[COMPARED], expected[COMPARED])
