"""GRPO on every tiny VLM architecture, and QLoRA (4-bit base) on CPU: a few steps move the adapter."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch

from medvqa.models.registry import build_model
from medvqa.models.common import DataInfo
from medvqa.demo.tiny_vlm import TINY_ARCHITECTURES, TinyVlmSpec, write_tiny_vlm
from medvqa.training.grpo import train_grpo
from medvqa.training.spec import TrainSpec

# The format reward with a one-word limit varies within a group even for a random model, so the
# advantages (and gradients) are non-zero from the first step.
SPEC = TrainSpec.from_mapping({"method": "grpo", "batch_size": 2, "lr": 5e-3, "warmup": 0.0, "device": "cpu",
                               "grpo": {"group_size": 4, "max_completion_length": 6, "max_steps": 3,
                                        "max_answer_words": 1, "rewards": {"format": 1.0}}})


def grpo_moves_the_adapter(checkpoint, paths, out, **model):
    built = build_model("vlm_sft", {"checkpoint": str(checkpoint), "lora_r": 4, "lora_alpha": 8,
                                    "lora_dropout": 0.0, **model}, DataInfo(0, 56))
    before = {n: p.detach().clone() for n, p in built.module.named_parameters() if p.requires_grad}
    state = train_grpo(SPEC, built, paths, out)
    history = pd.read_csv(out / "history.csv")
    assert state["step"] == 3 and list(history["step"]) == [1, 2, 3] and history["kl"].iloc[-1] > 0
    after = dict(built.module.named_parameters())
    return before and any(not torch.equal(after[n], p) for n, p in before.items())


@pytest.mark.parametrize("arch", [a for a in TINY_ARCHITECTURES if a != "qwen2_vl"])  # qwen2_vl: test_grpo_train
def test_grpo_trains_every_tiny_architecture(demo_grpo, arch, tmp_path):
    paths, _ = demo_grpo
    rows = pd.read_parquet(paths.train.parquet, columns=["question", "answer"])
    checkpoint = write_tiny_vlm(arch, tmp_path / arch, [*rows["question"], *rows["answer"]], seed=0)
    assert grpo_moves_the_adapter(checkpoint, paths.train, tmp_path / "run")


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (test extra)")
def test_grpo_trains_lora_over_a_4bit_base(demo_grpo, tmp_path):
    paths, _ = demo_grpo
    rows = pd.read_parquet(paths.train.parquet, columns=["question", "answer"])
    # bitsandbytes quantises in blocks of 64 inputs: every layer must be at least that wide.
    checkpoint = write_tiny_vlm("qwen2_vl", tmp_path / "q", [*rows["question"], *rows["answer"]], seed=0,
                                spec=TinyVlmSpec(vision_hidden_size=64))
    assert grpo_moves_the_adapter(checkpoint, paths.train, tmp_path / "run", quantization="4bit")
