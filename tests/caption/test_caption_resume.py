"""Resumable captioning: a stopped or crashed run continues where it stopped, losing and repeating nothing."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pandas as pd
import pytest

import medvqa.inference.caption as caption
from medvqa.inference.caption import CaptionSpec, chunk_path, parts_dir, run_captioning


def _spec(checkpoint, **extra) -> CaptionSpec:
    return CaptionSpec.from_mapping({"kind": "blip", "checkpoint": str(checkpoint), "batch_size": 2,
                                     "chunk_size": 4, "max_new_tokens": 8, **extra})


def _run(spec, split, out, **kwargs):
    return run_captioning(spec, split["data"], split["images"], split["image_ids"], out, model_name="m", **kwargs)


def _assert_one_row_per_image(frame: pd.DataFrame, split) -> None:
    assert frame["image_id"].tolist() == list(dict.fromkeys(split["rows"]["image_id"]))
    assert not frame["image_id"].duplicated().any()


def test_stopped_run_resumes_without_regenerating_the_finished_chunk(caption_split, sharp_blip_dir, tmp_path):
    spec, out = _spec(sharp_blip_dir), tmp_path / "test.parquet"
    first = _run(spec, caption_split, out, max_chunks=1)
    assert (first.generated, first.chunks_written, first.complete) == (4, 1, False)
    assert not out.exists()
    chunk0 = pd.read_parquet(chunk_path(parts_dir(out), 0))
    assert len(chunk0) == 4

    second = _run(spec, caption_split, out)
    assert (second.generated, second.reused, second.chunks_written, second.complete) == (6, 4, 2, True)
    frame = pd.read_parquet(out)
    _assert_one_row_per_image(frame, caption_split)
    # The first chunk's rows are the ones written before the stop (same timings), not regenerated.
    pd.testing.assert_frame_equal(frame.head(4)[list(chunk0.columns)].reset_index(drop=True), chunk0)
    assert frame["chunk"].tolist() == [0] * 4 + [1] * 4 + [2] * 2
    assert not parts_dir(out).exists()
    # ... and the captions are those of an uninterrupted run.
    uninterrupted = tmp_path / "whole.parquet"
    _run(spec, caption_split, uninterrupted)
    assert pd.read_parquet(uninterrupted)["generated"].tolist() == frame["generated"].tolist()


class Crash(RuntimeError):
    pass


def test_crash_mid_chunk_keeps_complete_chunks_only(caption_split, sharp_blip_dir, tmp_path, monkeypatch):
    """A kill during the third batch (second chunk): chunk 0 survives, chunk 1 is redone once."""
    spec, out = _spec(sharp_blip_dir), tmp_path / "test.parquet"
    batches_done = []
    real_load = caption.load_captioner

    def load_failing(spec, run_dir=None):
        captioner = real_load(spec, run_dir)

        def generate(images):
            if len(batches_done) == 2:  # batches of 2 images: the third batch is the first of chunk 1
                raise Crash("killed")
            batches_done.append(len(images))
            return captioner.generate(images)

        return dataclasses.replace(captioner, generate=generate)

    monkeypatch.setattr(caption, "load_captioner", load_failing)
    with pytest.raises(Crash):
        _run(spec, caption_split, out)
    assert sorted(p.name for p in parts_dir(out).glob("chunk-*")) == ["chunk-00000.parquet"]

    monkeypatch.setattr(caption, "load_captioner", real_load)
    run = _run(spec, caption_split, out)
    assert (run.generated, run.reused, run.complete) == (6, 4, True)
    _assert_one_row_per_image(pd.read_parquet(out), caption_split)


def test_leftover_temporary_and_corrupt_chunk_files_are_ignored(caption_split, sharp_blip_dir, tmp_path):
    spec, out = _spec(sharp_blip_dir), tmp_path / "test.parquet"
    _run(spec, caption_split, out, max_chunks=1)
    parts = parts_dir(out)
    tmp_file = parts / ".chunk-00001.parquet.k1ll3d.tmp"  # what atomic_path leaves when killed mid-write
    tmp_file.write_bytes(b"PAR1 half a parquet")
    corrupt = chunk_path(parts, 7)
    corrupt.write_bytes(b"not a parquet file at all")

    run = _run(spec, caption_split, out)
    assert (run.generated, run.reused, run.complete) == (6, 4, True)
    frame = pd.read_parquet(out)
    _assert_one_row_per_image(frame, caption_split)
    assert not parts.exists()


def test_changed_settings_discard_old_chunks_but_batch_size_does_not(caption_split, sharp_blip_dir, tmp_path):
    out = tmp_path / "test.parquet"
    _run(_spec(sharp_blip_dir), caption_split, out, max_chunks=1)

    bigger_batches = _run(_spec(sharp_blip_dir, batch_size=4, chunk_size=3), caption_split, out, max_chunks=1)
    assert (bigger_batches.reused, bigger_batches.generated) == (4, 3)  # 4 reused, one new chunk of 3

    longer = _run(_spec(sharp_blip_dir, max_new_tokens=9), caption_split, out)
    assert (longer.reused, longer.generated, longer.complete) == (0, 10, True)  # the captions would differ
    _assert_one_row_per_image(pd.read_parquet(out), caption_split)


def test_rewritten_checkpoint_discards_old_chunks(caption_split, sharp_blip_dir, tmp_path):
    """A checkpoint rebuilt at the same path (new weights file) must not mix its captions with the old."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(sharp_blip_dir, checkpoint)
    out = tmp_path / "test.parquet"
    _run(_spec(checkpoint), caption_split, out, max_chunks=1)
    weights = checkpoint / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    run = _run(_spec(checkpoint), caption_split, out)
    assert (run.reused, run.generated) == (0, 10)


def test_sampled_captions_are_the_same_after_a_resume(caption_split, sharp_blip_dir, tmp_path):
    spec = _spec(sharp_blip_dir, do_sample=True, temperature=1.5)
    whole, resumed, other_seed = tmp_path / "whole.parquet", tmp_path / "resumed.parquet", tmp_path / "seed1.parquet"
    _run(spec, caption_split, whole, seed=7)
    _run(spec, caption_split, resumed, seed=7, max_chunks=2)
    _run(spec, caption_split, resumed, seed=7)
    _run(spec, caption_split, other_seed, seed=8)
    generated = [pd.read_parquet(p)["generated"].tolist() for p in (whole, resumed, other_seed)]
    assert generated[0] == generated[1]
    assert generated[0] != generated[2]


def test_changed_split_keeps_only_its_own_images(caption_split, sharp_blip_dir, tmp_path):
    """Chunks of images no longer in the split are dropped from the result, not counted as done."""
    spec, out = _spec(sharp_blip_dir), tmp_path / "test.parquet"
    rows = caption_split["rows"]
    smaller = dict(caption_split, data=tmp_path / "smaller.parquet", rows=rows[rows["image_id"] != rows["image_id"][1]])
    smaller["rows"].to_parquet(smaller["data"])
    _run(spec, caption_split, out, max_chunks=1)
    run = _run(spec, smaller, out)
    assert (run.reused, run.generated) == (3, 6)
    _assert_one_row_per_image(pd.read_parquet(out), smaller)
