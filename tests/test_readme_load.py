"""README "Load a trained model": its code blocks run against tiny runs trained here, so they cannot
drift; run directories load from any working directory (relative checkpoint paths, adapters)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training.vqa_fixture import build_fixture, cnn_lstm_config, split_paths, split_rows, train_paths

from medvqa.demo.tiny_hf import write_tiny_blip
from medvqa.demo.tiny_vlm import write_tiny_vlm
from medvqa.models.checkpoint import load_trained
from medvqa.training.train import ModelConfig, TrainPaths, run_training

REPO = Path(__file__).resolve().parents[1]
TRAIN = {"epochs": 1, "batch_size": 16, "lr": 3e-3, "backbone_lr": 3e-3, "warmup": 0.0, "device": "cpu"}
RUNS = {"cnn": "results/models/demo/cnn_lstm_demo/0", "blip": "results/models/demo/blip_demo/0",
        "vlm": "results/models/demo/qwen2_vl_lora_demo/0"}


def readme_blocks() -> list[str]:
    """The ```python blocks of the README's "Load a trained model" section, in order."""
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Load a trained model\n(.*?)^## ", text, re.S | re.M)
    assert section, "README has no '## Load a trained model' section"
    return re.findall(r"```python\n(.*?)```", section.group(1), re.S)


@pytest.fixture(scope="module")
def workflow_root(tmp_path_factory):
    """A directory laid out like the workflow's: tiny checkpoints under results/pretrained/ and three
    runs under results/models/, trained with relative checkpoint paths from this directory."""
    root = tmp_path_factory.mktemp("workflow")
    with contextlib.chdir(root):
        build_fixture(Path("fx"))
        rows = split_rows("train", 6, 0)
        texts = [*rows["question"], *rows["answer"], "Is there a lesion? Answer briefly."] * 3
        write_tiny_blip("results/pretrained/blip-vqa-tiny", texts, seed=0, task="vqa", image_size=32)
        write_tiny_vlm("qwen2_vl", "results/pretrained/qwen2-vl-tiny", texts, seed=0)
        run_training(cnn_lstm_config(epochs=1), train_paths(Path("fx"), "words"), RUNS["cnn"], seed=0)
        text_only = TrainPaths(split_paths(Path("fx"), "train", None), split_paths(Path("fx"), "val", None),
                               Path("fx/data/fx/answers.json"))
        blip = {"family": "blip", "model": {"checkpoint": "results/pretrained/blip-vqa-tiny", "task": "vqa"},
                "train": TRAIN}
        vlm = {"family": "vlm_sft", "model": {"checkpoint": "results/pretrained/qwen2-vl-tiny", "lora_r": 4,
                                              "lora_alpha": 8, "lora_dropout": 0.0}, "train": TRAIN}
        run_training(ModelConfig.from_mapping(blip), text_only, RUNS["blip"], seed=0)
        run_training(ModelConfig.from_mapping(vlm), text_only, RUNS["vlm"], seed=0)
        scan = np.zeros((48, 48, 3), np.uint8)
        scan[10:30, 5:20] = 255
        Image.fromarray(scan).save("scan.png")
    return root


def test_readme_blocks_run_against_trained_runs(workflow_root, monkeypatch):
    blocks = readme_blocks()
    assert len(blocks) == 3  # a classifier, BLIP, a LoRA VLM
    monkeypatch.chdir(workflow_root)
    loaded = {}
    for block, run in zip(blocks, ("cnn", "blip", "vlm")):
        assert RUNS[run] in block
        namespace, printed = {"__name__": "__readme__"}, io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"README block ({run})", "exec"), namespace)
        loaded[run] = (namespace, printed.getvalue())
    namespace, printed = loaded["cnn"]
    assert printed.startswith("cnn_lstm CnnLstm") and "answers: [" in printed
    namespace, printed = loaded["blip"]
    assert type(namespace["model"]).__name__ == "BlipForQuestionAnswering" and printed.endswith("\n")
    namespace, printed = loaded["vlm"]
    assert type(namespace["model"]).__name__ == "PeftModel" and len(namespace["answer"]) >= 1
    # The prompt is the chat template's, with the image placeholder the processor expands.
    assert "<|vision_start|><|image_pad|><|vision_end|>" in namespace["prompt"]


def test_runs_load_from_another_working_directory(workflow_root, tmp_path, monkeypatch):
    from peft import PeftConfig
    from transformers import BlipForQuestionAnswering

    from medvqa.models.vlm_sft import spec_of

    runs = {name: workflow_root / path for name, path in RUNS.items()}
    monkeypatch.chdir(tmp_path)  # results/pretrained/... does not exist from here
    state = json.loads((runs["vlm"] / "state.json").read_text())
    assert state["args"]["checkpoint"] == "results/pretrained/qwen2-vl-tiny"  # state.json keeps what was configured
    base = PeftConfig.from_pretrained(runs["vlm"] / "adapter").base_model_name_or_path
    assert base == str(workflow_root / "results/pretrained/qwen2-vl-tiny")
    model, _ = load_trained(runs["vlm"])
    assert spec_of(model.args).checkpoint == base and hasattr(model.module, "peft_config")
    # BLIP: hf_model/ holds exactly the weights medvqa rebuilds from best.safetensors.
    built, _ = load_trained(runs["blip"])
    exported = BlipForQuestionAnswering.from_pretrained(runs["blip"] / "hf_model")
    ours = built.module.hf.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in exported.state_dict().items())
    cnn, state = load_trained(runs["cnn"])
    assert cnn.family == "cnn_lstm" and not cnn.module.training and state["answers"]
    # The folders were built in temporary siblings (medvqa.io.atomic_dir): none is left or named in them.
    for folder in (*runs.values(), workflow_root / "results/pretrained"):
        assert not list(folder.glob(".*.tmp"))
    for exported in (runs["blip"] / "hf_model", runs["vlm"] / "adapter"):
        assert not any(".tmp" in p.read_text() for p in exported.glob("*.json"))


def test_only_relative_paths_that_exist_from_an_ancestor_of_the_run_are_resolved(tmp_path, monkeypatch):
    from medvqa.models.checkpoint import resolve_run_path

    run = tmp_path / "results/models/d/m/0"
    run.mkdir(parents=True)
    (tmp_path / "results/pretrained/ckpt").mkdir(parents=True)
    monkeypatch.chdir(run)
    assert resolve_run_path("results/pretrained/ckpt", run) == str(tmp_path / "results/pretrained/ckpt")
    for value in ("Qwen/Qwen2-VL-2B-Instruct", "Answer yes/no.", "a/" + "x" * 300, 3, "/abs/path", "vqa"):
        assert resolve_run_path(value, run) == value
