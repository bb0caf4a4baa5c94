"""A model with shards: N answers and captions each split as N Snakemake jobs whose merge equals
the unsharded run's file, and whose metrics are the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def shard_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in ("demo", "demo_captions"):
        config["datasets"][name]["options"]["n_images"] = 60
    config["datasets"]["demo"]["tokenizers"] = ["words"]
    config["tokenizers"] = {"words": config["tokenizers"]["words"]}
    config["pretrained"] = {name: config["pretrained"][name] for name in ("qwen2-vl-tiny", "blip-caption-tiny")}
    zero_shot = config["models"]["qwen2_vl_zero_shot_demo"]
    captioner = config["models"]["blip_caption_zs"]
    config["models"] = {
        "qwen_zs": zero_shot, "qwen_zs_sharded": {**zero_shot, "shards": 3},
        "blip_zs": captioner, "blip_zs_sharded": {**captioner, "shards": 2},
    }
    config["experiments"] = [
        {"datasets": ["demo"], "models": ["qwen_zs", "qwen_zs_sharded"], "seeds": [0]},
        {"datasets": ["demo_captions"], "models": ["blip_zs", "blip_zs_sharded"], "seeds": [0]},
    ]
    config["report"].pop("published", None)
    return config


@pytest.mark.workflow
def test_sharded_answers_and_captions_equal_unsharded_ones(tmp_path):
    (tmp_path / "shards.yaml").write_text(yaml.safe_dump(shard_config()))
    targets = [f"results/metrics/demo/{m}/0/test.json" for m in ("qwen_zs", "qwen_zs_sharded")]
    targets += [f"results/metrics/demo_captions/{m}/0/test.json" for m in ("blip_zs", "blip_zs_sharded")]
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "shards.yaml",
         "--cores", "2", *targets],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    assert len(list((results / "predictions/demo/qwen_zs_sharded/0/shards").glob("test.*.parquet"))) == 3
    assert len(list((results / "captions/demo_captions/blip_zs_sharded/0/shards").glob("test.*.parquet"))) == 2
    whole = pd.read_parquet(results / "predictions/demo/qwen_zs/0/test.parquet")
    merged = pd.read_parquet(results / "predictions/demo/qwen_zs_sharded/0/test.parquet")
    assert merged["question_id"].tolist() == whole["question_id"].tolist()
    assert merged["prediction"].tolist() == whole["prediction"].tolist()
    pd.testing.assert_frame_equal(merged, whole, check_exact=False, atol=1e-5)  # batches differ: float noise only
    columns = ["image_id", "caption", "generated"]
    captions = [pd.read_parquet(results / f"captions/demo_captions/{m}/0/test.parquet") for m in ("blip_zs", "blip_zs_sharded")]
    pd.testing.assert_frame_equal(captions[1][columns], captions[0][columns])
    metrics = [json.loads((tmp_path / t).read_text()) for t in targets]
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"]
    assert metrics[2]["bleu"] == metrics[3]["bleu"]
