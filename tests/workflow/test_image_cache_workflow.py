"""image_cache png and none in the real Snakemake DAG: two tiny datasets of the same images, one per
kind, each train and predict one cheap model with the same results; a clean view scores on its base's
png cache; summary.json states each kind's bytes on disk; none builds no cache file. (That raw gives
these same numbers: tests/training/test_image_cache_kinds.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def kinds_config() -> dict:
    """demo_png / demo_none: the demo source at 30 images, 32 px; cnn_lstm for one epoch; the png
    dataset also gets a clean view (scored with its base's run, images from its base's cache)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    base = config["datasets"]["demo"]
    base = {**base, "options": {**base["options"], "n_images": 30}, "tokenizers": ["words"], "image_size": 32}
    config["datasets"] = {f"demo_{kind}": {**base, "image_cache": kind} for kind in ("png", "none")}
    config["tokenizers"] = {"words": config["tokenizers"]["words"]}
    config["pretrained"] = {}
    model = config["models"]["cnn_lstm_demo"]
    model["train"] = {**model["train"], "epochs": 1}
    config["models"] = {"cnn": model}
    config["experiments"] = [{"datasets": ["demo_none"], "models": ["cnn"], "seeds": [0]},
                             {"datasets": ["demo_png"], "models": ["cnn"], "seeds": [0], "leakage": ["keep", "drop"]}]
    config["report"].pop("published", None)
    return config


@pytest.mark.workflow
def test_png_and_none_datasets_train_and_predict_alike_and_state_their_disk_cost(tmp_path):
    (tmp_path / "kinds.yaml").write_text(yaml.safe_dump(kinds_config()))
    views = ["demo_png", "demo_none", "demo_png-clean"]
    targets = [f"results/predictions/{view}/cnn/0/test.parquet" for view in views]
    targets += [f"results/data/{view}/summary.json" for view in views[:2]]
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "kinds.yaml",
         "--cores", "2", *targets],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = tmp_path / "results" / "data"
    assert sorted(p.name for p in data.glob("demo_png/images_*")) == [
        f"images_32.{split}.png.arrow" for split in ("test", "train", "val")]
    assert not list(data.glob("demo_none/images_*")) and not list(data.glob("demo_png-clean/images_*"))
    predictions = {view: pd.read_parquet(tmp_path / target) for view, target in zip(views, targets)}
    pd.testing.assert_frame_equal(predictions["demo_none"], predictions["demo_png"])
    clean = predictions["demo_png-clean"]  # the base's run on the view's questions, images from the base's cache
    whole = predictions["demo_png"].set_index("question_id").loc[clean["question_id"]].reset_index()
    pd.testing.assert_frame_equal(clean, whole)
    storage = {kind: json.loads((data / f"demo_{kind}" / "summary.json").read_text())["image_storage"]
               for kind in ("png", "none")}
    assert storage["png"]["cache"] == "png" and storage["none"]["cache"] == "none"
    for split in ("train", "val", "test"):
        png = storage["png"]["splits"][split]
        assert png["cache_bytes"] == (data / "demo_png" / f"images_32.{split}.png.arrow").stat().st_size
        assert 0 < png["cache_bytes"] < png["raw_cache_bytes"] and png["cache_bytes_per_image"] > 0
        assert storage["none"]["splits"][split]["cache_bytes"] == 0
