"""GRPO of the tiny Qwen2-VL on demo train questions: SFT then GRPO raises the mean reward, the run
writes per-step history and reloads; a killed run resumes from its last checkpoint."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from medvqa.families import ModelConfig
from medvqa.io import read_json
from medvqa.training.train import run_training
from medvqa.training import rewards
from medvqa.models.checkpoint import load_checkpoint

LORA = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
COMMON = {"batch_size": 4, "weight_decay": 0.0, "warmup": 0.0, "device": "cpu"}
GRPO = {"group_size": 4, "beta": 0.04, "max_completion_length": 6, "save_steps": 2}
MARGIN = 0.1  # mean reward of epoch 3 over epoch 1 (measured: 0.27 → 0.38 → 0.44; correctness 0.15 → 0.49)


def entry(checkpoint, **train) -> ModelConfig:
    return ModelConfig.from_mapping({"family": "vlm_sft", "model": {"checkpoint": str(checkpoint), **LORA},
                                     "train": {**COMMON, **train}})


def test_sft_then_grpo_raises_the_mean_reward_on_demo_train_questions(demo_grpo, tmp_path):
    paths, qwen = demo_grpo
    run_training(entry(qwen, epochs=3, batch_size=8, lr=1e-2), paths, tmp_path / "sft", seed=0)
    sft_weights = tmp_path / "sft" / "best.safetensors"
    grpo = entry(qwen, method="grpo", epochs=3, lr=5e-3, init_from="sft", grpo=GRPO)
    state = run_training(grpo, dataclasses.replace(paths, init_from=sft_weights), tmp_path / "grpo", seed=0)

    history = pd.read_csv(tmp_path / "grpo" / "history.csv")
    questions = len(pd.read_parquet(paths.train.parquet))
    per_epoch = -(-questions // COMMON["batch_size"])
    assert list(history["step"]) == list(range(1, 3 * per_epoch + 1)) and state["step"] == 3 * per_epoch
    for column in ("reward", "reward_std", "reward_correctness", "reward_token_f1", "reward_format", "kl",
                   "completion_length"):
        assert column in history and history[column].notna().any(), column
    first, last = history["reward"].iloc[:per_epoch].mean(), history["reward"].iloc[-per_epoch:].mean()
    assert last > first + MARGIN, (first, last)
    assert history["kl"].iloc[0] == 0 and history["kl"].iloc[1:].gt(0).all()  # the policy leaves the reference
    # The run reloads as every vlm_sft run does: base + the saved adapter (adapter/ for PEFT users).
    assert state["spec"]["method"] == "grpo" and (tmp_path / "grpo" / "adapter" / "adapter_config.json").exists()
    model, _ = load_checkpoint(tmp_path / "grpo")
    sft, _ = load_checkpoint(tmp_path / "sft")
    grpo_lora = {n: p for n, p in model.module.named_parameters() if "lora_B" in n}
    sft_lora = dict(sft.module.named_parameters())
    assert grpo_lora and any(not torch.equal(p, sft_lora[n]) for n, p in grpo_lora.items())


class Killed(RuntimeError):
    pass


def test_a_killed_grpo_run_resumes_from_its_last_checkpoint(demo_grpo, tmp_path, monkeypatch):
    paths, qwen = demo_grpo
    config = entry(qwen, method="grpo", lr=5e-3, grpo={**GRPO, "max_steps": 4, "rewards": {"format": 1.0}})
    whole = run_training(config, paths, tmp_path / "whole", seed=1)

    calls = []
    real = rewards.REWARDS["format"]

    def fails_at_step_3(*args):  # the reward is computed once per completion; 16 per step
        calls.append(1)
        if len(calls) > 2 * 16:
            raise Killed("killed")
        return real(*args)

    monkeypatch.setitem(rewards.REWARDS, "format", fails_at_step_3)
    with pytest.raises(Killed):
        run_training(config, paths, tmp_path / "killed", seed=1)
    assert read_json(tmp_path / "killed" / "resume" / "last.json")["step"] == 2
    assert not (tmp_path / "killed" / "state.json").exists()
    monkeypatch.setitem(rewards.REWARDS, "format", real)

    resumed = run_training(config, paths, tmp_path / "killed", seed=1)
    assert resumed["step"] == whole["step"] == 4
    before, after = pd.read_csv(tmp_path / "whole" / "history.csv"), pd.read_csv(tmp_path / "killed" / "history.csv")
    assert list(after["step"]) == [1, 2, 3, 4]
    columns = ["reward", "reward_format", "completion_length", "kl", "loss"]
    pd.testing.assert_frame_equal(after[columns], before[columns], atol=1e-5, rtol=1e-4)
    a, _ = load_checkpoint(tmp_path / "whole")
    b, _ = load_checkpoint(tmp_path / "killed")
    for (name, x), (_, y) in zip(a.module.named_parameters(), b.module.named_parameters()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=name)
