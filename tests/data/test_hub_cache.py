"""The hf source reads a hub id's parquet files from the huggingface_hub cache, offline, with no
Arrow copy (issue 14 item 1): the same ``snapshot_download`` call that fills the cache online
resolves refs/<revision> → snapshots/<commit> in a cache built here in huggingface_hub's layout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub.constants
import pandas as pd
import pytest
from data.fixtures import hub_cache, image_file_bytes, rocov2_like, vqa_rad_like, write_hub_layout

from medvqa.data.batches import RawRows, unify_raw
from medvqa.data.hf import HFSourceSpec, _arrow_batches, hf_raw_rows
from medvqa.data.sources import load_source

REPO = Path(__file__).resolve().parents[2]
ROCO = "eltorio/ROCOv2-radiology"


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub uses, offline, as HF_HUB_CACHE / HF_HUB_OFFLINE=1
    set before its import would make it (both are read into ``constants`` at import)."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def arrow_files(root: Path) -> list[Path]:
    return list(root.rglob("*.arrow"))


def test_hub_id_reads_the_hub_cache_offline_like_the_local_directory(tmp_path, offline_cache):
    rocov2_like(tmp_path / "src")
    hub_cache(offline_cache, ROCO, tmp_path / "src")
    datasets_cache = tmp_path / "datasets_cache"
    from_hub = load_source("hf", {"path": ROCO, "cache_dir": str(datasets_cache)}, "rocov2", "caption")
    local = load_source("hf", {"path": str(tmp_path / "src"), "preset": "rocov2"}, "rocov2", "caption")
    pd.testing.assert_frame_equal(from_hub, local)
    assert from_hub.groupby("split").size().to_dict() == {"train": 3, "val": 3, "test": 3}
    assert not arrow_files(tmp_path), "a parquet dataset must not be copied into the datasets cache"


def test_revision_pins_a_commit_or_a_tag_of_the_cached_repo(tmp_path, offline_cache):
    vqa_rad_like(tmp_path / "v1")
    old = hub_cache(offline_cache, "flaviagiammarino/vqa-rad", tmp_path / "v1", ref="v1.0")
    newer = vqa_rad_like(tmp_path / "v2")
    newer["test"] = {name: values[:2] for name, values in newer["test"].items()}
    (tmp_path / "v2" / "data" / "test-00000-of-00001.parquet").unlink()
    write_hub_layout(tmp_path / "v2", {"test": newer["test"]})
    hub_cache(offline_cache, "flaviagiammarino/vqa-rad", tmp_path / "v2")  # refs/main

    def test_rows(**options):
        rows = load_source("hf", {"path": "flaviagiammarino/vqa-rad", **options}, "vqa_rad")
        return int((rows["split"] == "test").sum())

    assert (test_rows(), test_rows(revision=old), test_rows(revision="v1.0")) == (2, 3, 3)
    pinned = load_source("hf", {"path": "flaviagiammarino/vqa-rad", "revision": "v1.0"}, "vqa_rad")
    assert pinned.attrs["hub_commit"] == f"flaviagiammarino/vqa-rad@{old}"  # meta.json names what was read


@pytest.mark.parametrize("layout", [vqa_rad_like, rocov2_like])
def test_parquet_rows_equal_the_load_dataset_rows(tmp_path, layout):
    """Reading the parquet files directly gives the rows, splits and ids that the Arrow copy of
    ``datasets.load_dataset`` (the previous path, now the non-parquet fallback) gives."""
    root = tmp_path / "src"
    layout(root)
    spec = HFSourceSpec(path=str(root), cache_dir=str(tmp_path / "cache"))
    direct = hf_raw_rows(spec, "d")
    splits = datasets.load_dataset(str(root), cache_dir=str(tmp_path / "cache"))
    split_map = {"train": "train", "validation": "val", "test": "test"}
    via_arrow = RawRows(direct.columns, _arrow_batches(splits, direct.columns, split_map), image_dir=root)
    pd.testing.assert_frame_equal(unify_raw(direct, "d"), unify_raw(via_arrow, "d"))


def test_a_directory_that_is_not_parquet_falls_back_to_load_dataset(tmp_path):
    root = tmp_path / "csv_repo"
    (root / "images").mkdir(parents=True)
    for i in range(4):
        (root / "images" / f"{i}.png").write_bytes(image_file_bytes(i))
    for split, ids in (("train", [0, 1, 2]), ("test", [3])):
        n = len(ids)
        table = {"image": [f"images/{i}.png" for i in ids], "question": ["is it ct?"] * n, "answer": ["yes"] * n}
        pd.DataFrame(table).to_csv(root / f"{split}.csv", index=False)
    rows = load_source("hf", {"path": str(root), "cache_dir": str(tmp_path / "cache")}, "d")
    assert rows.groupby("split").size().to_dict() == {"train": 2, "val": 1, "test": 1}
    assert arrow_files(tmp_path / "cache"), "the fallback is load_dataset, which makes the Arrow copy"


def test_offline_environment_variables_alone_resolve_the_hub_id(tmp_path):
    """The user's setup, in a fresh process: HF_HUB_CACHE + HF_HUB_OFFLINE=1 and a hub id."""
    vqa_rad_like(tmp_path / "src")
    hub_cache(tmp_path / "hub", "flaviagiammarino/vqa-rad", tmp_path / "src")
    script = (
        "import json; from medvqa.data.sources import load_source; "
        "rows = load_source('hf', {'path': 'flaviagiammarino/vqa-rad'}, 'vqa_rad'); "
        "print(json.dumps(rows.groupby('split').size().to_dict()))"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "HF_DATASETS_CACHE": str(tmp_path / "datasets_cache")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["test"] == 3 and counts["train"] + counts["val"] == 20
    assert not arrow_files(tmp_path)
