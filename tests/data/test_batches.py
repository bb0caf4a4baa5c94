"""The import read in batches (medvqa.data.batches) gives the rows, ids, rules and rejected rows
of the in-memory path, whatever the batch size; and its peak memory does not grow with the
number of images (issue 14 item 1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from data.fixtures import image_file_bytes, rocov2_like, slake_folder, vqa_rad_like
from data.test_bad_inputs import truncated_jpeg, write_table

from medvqa.data import schema
from medvqa.data.batches import unified_frame
from medvqa.data.prepare import ImportSpec, import_dataset
from medvqa.data.sources import load_source, stream_source

REPO = Path(__file__).resolve().parents[2]
# Peak heap (RssAnon) of the import at 300 and at 1,200 ROCOv2-like images of ~64 kB (77 MB of
# images): the whole-table import grew by ~0.14 MB per image (~125 MB here), batches by ~0.
MARGIN_MB = 30


def sources(tmp_path):
    vqa_rad_like(tmp_path / "rad")
    rocov2_like(tmp_path / "roco")
    hf = {"cache_dir": str(tmp_path / "cache")}
    return {
        "vqa_rad_like (val carved off train)": ("hf", {"path": str(tmp_path / "rad"), **hf}, "vqa"),
        "rocov2_like": ("hf", {"path": str(tmp_path / "roco"), **hf}, "caption"),
        "slake folder (paths)": ("slake", {"path": str(slake_folder(tmp_path / "slake"))}, "vqa"),
    }


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_streamed_rows_equal_the_in_memory_rows_split_by_split(tmp_path, batch_rows):
    for name, (source, options, task) in sources(tmp_path).items():
        whole = load_source(source, options, "d", task)
        streamed = stream_source(source, options, "d", task, batch_rows)
        frame = unified_frame(streamed, schema.SPLITS, batch_rows)
        assert frame.attrs == whole.attrs, name
        for split in schema.SPLITS:
            expected = whole[whole["split"] == split].reset_index(drop=True)
            got = frame[frame["split"] == split].reset_index(drop=True)
            assert len(expected), (name, split)
            pd.testing.assert_frame_equal(got[expected.columns], expected, obj=f"{name} {split}")


def test_rejected_rows_and_kept_files_do_not_depend_on_the_batch_size(tmp_path):
    images = [image_file_bytes(i) for i in range(9)]
    images[4] = truncated_jpeg()
    images[7] = "images/absent.png"
    ids = [f"q{i}" for i in range(9)]
    ids[6] = "q0"  # a duplicate across splits (q0 is train, row 6 is train too: within the split)
    ids[5] = "q2"  # q2 is test, row 5 is test: within the split, in a later batch
    table = write_table(tmp_path, images, ids)
    outputs, files = {}, {}
    for batch_rows in (1, 2, 1000):
        root = tmp_path / f"b{batch_rows}"
        root.mkdir()
        spec = ImportSpec(source="local", options={"path": str(table)}, on_bad_sample="skip")
        paths = {s: root / f"{s}.parquet" for s in schema.SPLITS}
        counts = import_dataset(spec, "mine", paths, root / "rejected.csv", root / "meta.json", batch_rows)
        outputs[batch_rows] = counts, pd.read_csv(root / "rejected.csv")
        files[batch_rows] = {s: pd.read_parquet(p) for s, p in paths.items()}
    first = outputs[1]
    for batch_rows, (counts, rejected) in outputs.items():
        assert counts == first[0]
        pd.testing.assert_frame_equal(rejected, first[1])
        for split in schema.SPLITS:
            pd.testing.assert_frame_equal(files[batch_rows][split], files[1][split])
    reasons = dict(zip(first[1]["id"], first[1]["reason"]))
    assert reasons["q0"] == "duplicate question_id" and reasons["q2"] == "duplicate question_id"
    assert reasons["q4"].startswith("corrupt image") and reasons["q7"].startswith("missing image")


def test_import_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Each size imports in its own process (bench/bench_data_scale.py --stage import), from the
    hub-layout directory and through a hub id from a hub cache, reading the parquet files one row
    group at a time (row groups of 100 rows at both sizes: the heap follows a row group's bytes)."""
    command = [
        sys.executable, str(REPO / "bench" / "bench_data_scale.py"), "--layout", "caption", "--sizes", "300",
        "1200", "--stages", "import", "import_hub", "--batch-rows", "64", "--row-group-rows", "100",
        "--out", str(tmp_path),
    ]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=300)
    rows = json.loads((tmp_path / "bench_data_scale.json").read_text())["rows"]
    for stage in ("import", "import_hub"):
        small, large = (row for row in rows if row["stage"] == stage)
        assert (small["n_images"], large["n_images"]) == (300, 1200)
        grown = large["peak_anon_mb"] - small["peak_anon_mb"]
        assert grown < MARGIN_MB, f"{stage} heap grew by {grown:.0f} MB from 300 to 1200 images"
    assert not list(tmp_path.rglob("*.arrow")), "no datasets Arrow copy of a parquet dataset"
