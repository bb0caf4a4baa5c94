"""configs/vlm_families.yaml (the vlm_sft architectures beyond Qwen2-VL, which left the demo) with
real Snakemake on a small demo: each trains a LoRA adapter for one epoch, answers every test
question and is scored."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODELS = ["qwen2_5_vl_lora_demo", "internvl_lora_demo", "llava_lora_demo", "llava_next_lora_demo"]

pytestmark = pytest.mark.workflow


def test_vlm_families_config_trains_answers_and_scores_each_model(tmp_path):
    small = {
        "datasets": {"demo": {"options": {"n_images": 50}}, "demo_captions": {"options": {"n_images": 50}}},
        "models": {model: {"train": {"epochs": 1}} for model in MODELS},
    }
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small))
    configs = [str(REPO / "config.yaml"), str(REPO / "configs" / "vlm_families.yaml"), "small.yaml"]
    experiments = yaml.safe_load((REPO / "configs" / "vlm_families.yaml").read_text())["experiments"]
    assert experiments == [{"datasets": ["demo"], "models": MODELS, "seeds": [0]}]
    targets = [f"results/metrics/demo/{model}/0/test.json" for model in MODELS]
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", *configs, "--cores", "2", *targets],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    test = pd.read_parquet(tmp_path / "results/data/demo/test.parquet")
    for model in MODELS:
        history = pd.read_csv(tmp_path / f"results/models/demo/{model}/0/history.csv")
        assert len(history) == 1, model  # one epoch
        predictions = pd.read_parquet(tmp_path / f"results/predictions/demo/{model}/0/test.parquet")
        assert sorted(predictions["question_id"]) == sorted(test["question_id"]), model
        metrics = json.loads((tmp_path / f"results/metrics/demo/{model}/0/test.json").read_text())
        assert 0 <= metrics["accuracy"]["exact_match"]["overall"]["value"] <= 1, model
