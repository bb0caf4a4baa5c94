"""GRPO entries in the workflow: config checks of method / init_from, and configs/grpo.yaml's DAG."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from medvqa.families import ModelConfig
from medvqa.spec import ConfigError
from medvqa.workflow_config import check_config

REPO = Path(__file__).resolve().parents[2]


def merged_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    extra = yaml.safe_load((REPO / "configs" / "grpo.yaml").read_text())
    config["models"].update(extra["models"])
    config["experiments"] = extra["experiments"]
    return config


def test_the_grpo_example_config_passes_the_checks():
    check_config(merged_config())


@pytest.mark.parametrize(("change", "match"), [
    (lambda m: m["qwen2_vl_sft_grpo_demo"]["train"].update(init_from="nope"), "unknown model 'nope'"),
    (lambda m: m["qwen2_vl_sft_grpo_demo"]["train"].update(init_from="qwen2_vl_sft_grpo_demo"), "no chains"),
    (lambda m: m["qwen2_vl_sft_grpo_demo"]["train"].update(init_from="qwen2_vl_grpo_demo"), None),
    (lambda m: m["qwen2_vl_lora_demo"]["model"].update(lora_r=4), "same family and model"),
])
def test_init_from_names_a_run_whose_adapter_fits(change, match):
    config = copy.deepcopy(merged_config())
    change(config["models"])
    if match is None:  # another GRPO run trained from the base model is a valid start too
        check_config(config)
        return
    with pytest.raises(ConfigError, match=match) as error:
        check_config(config)
    assert str(error.value).startswith("models.qwen2_vl_sft_grpo_demo.train.init_from")


def test_grpo_is_for_vlm_sft_lora_entries():
    with pytest.raises(ConfigError, match="models.m.train: method grpo and init_from are for vlm_sft"):
        ModelConfig.from_mapping({"family": "blip", "model": {"checkpoint": "x"}, "train": {"method": "grpo"}},
                                 "models.m")
    with pytest.raises(ConfigError, match=r"models.m.model.finetune: not a key; an entry without a train: block"):
        ModelConfig.from_mapping({"family": "vlm_sft", "model": {"checkpoint": "x", "finetune": False},
                                  "train": {"method": "grpo"}}, "models.m")
    with pytest.raises(ConfigError, match="gpus: 1"):
        ModelConfig.from_mapping({"family": "vlm_sft", "model": {"checkpoint": "x"},
                                  "train": {"method": "grpo", "gpus": 2, "batch_size": 8}}, "models.m")


@pytest.mark.workflow
def test_sft_then_grpo_is_one_experiment_in_the_dag(tmp_path):
    """Dry run of the GRPO run that starts from SFT: its train job needs the SFT run's weights."""
    target = "results/models/demo/qwen2_vl_sft_grpo_demo/0/state.json"
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), target, "-n", "--configfile", str(REPO / "config.yaml"),
         str(REPO / "configs" / "grpo.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = {}
    for job in result.stdout.split("rule train_vlm:")[1:]:  # vlm_sft runs (they export adapter/)
        lines = dict(line.strip().split(": ", 1) for line in job.splitlines() if ": " in line)
        jobs[lines["wildcards"]] = lines["input"].split(", ")
    sft, grpo = "dataset=demo, model=qwen2_vl_lora_demo, seed=0", "dataset=demo, model=qwen2_vl_sft_grpo_demo, seed=0"
    assert set(jobs) == {sft, grpo}
    assert "results/models/demo/qwen2_vl_lora_demo/0/best.safetensors" in jobs[grpo]


def test_grpo_settings_need_method_grpo_but_a_specs_own_dict_round_trips():
    from medvqa.training.spec import TrainSpec

    with pytest.raises(ConfigError, match=r"models\.m\.train: grpo settings need method: grpo"):
        TrainSpec.from_mapping({"grpo": {"beta": 0.1}}, "models.m.train")
    sft = TrainSpec.from_mapping({"epochs": 3})
    assert TrainSpec.from_mapping(sft.to_dict()) == sft  # to_dict carries the default grpo block
    grpo = TrainSpec.from_mapping({"method": "grpo", "grpo": {"beta": 0.1}})
    assert TrainSpec.from_mapping(grpo.to_dict()) == grpo
