"""Data-parallel training under torchrun (2 CPU processes, gloo) against a one-process run.

With the global batch split over the processes, the same data order and gradients averaged
before each step, two processes follow the one-process trajectory. It is not bit-exact: each
process sums its half of the batch and the halves are then averaged, a different float32
summation order than one pass over the whole batch (differences ~1e-7 per step, which AdamW's
division by sqrt(v) can amplify a little over the steps). Dropout and augmentation are off
because their random draws differ between one and two processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from training.vqa_fixture import SIZE, clip_config, split_paths

from medvqa.models.batch import SplitPaths
from medvqa.training.train import run_training

RELATIVE_TOLERANCE = 1e-4  # of the final weights and the val loss; measured ~1e-6 (see module docstring)


def deterministic_config(root: Path, **train):
    config = clip_config(root, **{"epochs": 2, "batch_size": 16, "augment": {"enabled": False}, **train})
    return config.__class__.from_mapping({**config.to_dict(), "model": {**config.model, "dropout": 0.0}})


def named_inputs(root: Path) -> dict[str, str]:
    """The train rule's named inputs (``TrainPaths.from_inputs``)."""
    inputs = {"answers": str(root / "data" / "fx" / "answers.json")}
    for split in ("train", "val"):
        paths: SplitPaths = split_paths(root, split, "clip")
        inputs.update({split: str(paths.parquet), f"{split}_images": str(paths.images),
                       f"{split}_image_ids": str(paths.image_ids), f"{split}_tokens": str(paths.tokens)})
    return inputs


def torchrun(config, root: Path, out: Path, writes: Path, seed: int) -> subprocess.CompletedProcess:
    """What rule train_ddp runs, with 2 CPU processes (through ddp_worker, which records writes)."""
    writes.mkdir()
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "MEDVQA_WRITES_DIR": str(writes), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
               "--entry", json.dumps(config.to_dict()), "--inputs", json.dumps(named_inputs(root)),
               "--image-size", str(SIZE), "--out", str(out), "--seed", str(seed), "--threads", "1"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest relative difference of a tensor, but for the attention key biases: softmax ignores a
    bias added to every key, so their true gradient is 0 and what they get is float noise, which
    AdamW's division by sqrt(v) turns into updates of lr size that differ from run to run (and
    change no output)."""
    assert a.keys() == b.keys()
    a = {k: v for k, v in a.items() if not k.endswith("k_proj.bias")}
    return max(float((a[k].float() - b[k].float()).norm() / b[k].float().norm().clamp_min(1e-12)) for k in a)


def test_two_processes_match_one_process_and_only_rank_0_writes(fixture_root, tmp_path):
    config = deterministic_config(fixture_root)
    started = time.perf_counter()
    done = torchrun(config, fixture_root, tmp_path / "ddp", tmp_path / "writes", seed=1)
    ddp_seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    single = run_training(config, paths_of(fixture_root), tmp_path / "single", seed=1)

    log = done.stderr  # no --log: torchrun's own parser would claim it (rule train_ddp redirects stderr)
    assert "rank 0 of 2 (gloo)" in log and "batches of 8 per epoch on each of 2 processes" in log
    writers = (tmp_path / "writes" / "writes.0.txt").read_text().split()
    assert writers.count("save_progress") == 2 and writers.count("finalise") == 1
    assert not (tmp_path / "writes" / "writes.1.txt").exists()  # rank 1 called no writer

    history = pd.read_csv(tmp_path / "ddp" / "history.csv")
    reference = pd.read_csv(tmp_path / "single" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    for column in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
        assert history[column].to_numpy() == pytest.approx(reference[column].to_numpy(), rel=RELATIVE_TOLERANCE)
    weights = load_file(str(tmp_path / "ddp" / "best.safetensors"))
    difference = relative_difference(weights, load_file(str(tmp_path / "single" / "best.safetensors")))
    print(f"torchrun {ddp_seconds:.1f} s; largest relative weight difference {difference:.2e}")
    assert difference < RELATIVE_TOLERANCE
    state = json.loads((tmp_path / "ddp" / "state.json").read_text())
    assert state["best_epoch"] == single["best_epoch"] and state["spec"]["batch_size"] == 16


def paths_of(root: Path):
    from medvqa.training.train import TrainPaths

    return TrainPaths.from_inputs(named_inputs(root))
