"""Demo train/val splits, answers.json and a tiny Qwen2-VL, written once per test session."""

from __future__ import annotations

import pytest
from grpo.grpo_fixture import write_demo_split, write_tiny_qwen

from medvqa.io import write_json
from medvqa.training.train import TrainPaths


@pytest.fixture(scope="session")
def demo_grpo(tmp_path_factory):
    """(TrainPaths of the demo's train/val splits + answers.json, tiny Qwen2-VL directory); read-only."""
    import pandas as pd

    root = tmp_path_factory.mktemp("grpo_demo")
    train, val = write_demo_split(root, n_images=12, split="train"), write_demo_split(root, n_images=12, split="val")
    answers = sorted(set(pd.read_parquet(train.parquet, columns=["answer"])["answer"]))
    write_json({"answers": answers}, root / "answers.json")
    return TrainPaths(train, val, root / "answers.json"), write_tiny_qwen(root / "qwen", train)
