"""Checkpoint files of one training run, and rebuilding a model from them.

Layout of ``results/models/{dataset}/{model}/{seed}/``:
  best.safetensors   weights of the epoch with the best validation accuracy   (final output)
  state.json         family, builder args, answers, spec, epoch, best epoch/metric (final output)
  history.csv        epoch, train/val loss and accuracy, lr, seconds            (final output)
  resume/            written every epoch while training, read when a killed run is re-run:
    last.safetensors   weights after the last finished epoch
    last.pt            optimizer, scheduler, grad-scaler and RNG state (torch.load weights_only)
    best.safetensors   best weights so far
    history.csv        one row per finished epoch
    last.json          the state; written last, so it names the last *complete* epoch

The final outputs appear only when training ends, so a workflow manager that deletes the
outputs of a killed job leaves ``resume/`` in place for the re-run.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medvqa.io import atomic_path, read_json, write_csv, write_json
from medvqa.models import BuiltModel, rebuild_model

log = logging.getLogger(__name__)

WEIGHTS, STATE, HISTORY, RESUME = "best.safetensors", "state.json", "history.csv", "resume"


def save_weights(module: nn.Module, path: str | Path) -> None:
    """The module's state dict (weights and buffers) as safetensors."""
    # Every tensor gets its own CPU copy: on CUDA, cuDNN packs the LSTM weights into one
    # buffer, which safetensors would refuse as shared storage.
    state = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_weights(module: nn.Module, path: str | Path) -> None:
    module.load_state_dict(load_file(str(path), device="cpu"), strict=True)


def save_progress(
    resume_dir: Path, module: nn.Module, state: Mapping[str, Any], training: Mapping[str, Any],
    history: pd.DataFrame, improved: bool,
) -> None:
    """Write one finished epoch; ``training`` holds optimizer/scheduler/scaler state dicts."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    if improved:
        save_weights(module, resume_dir / "best.safetensors")
    save_weights(module, resume_dir / "last.safetensors")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    with atomic_path(resume_dir / "last.pt") as tmp:
        torch.save({**training, "rng": rng}, tmp)
    write_csv(history, resume_dir / HISTORY)
    write_json(dict(state), resume_dir / "last.json")


def load_progress(resume_dir: Path, module: nn.Module) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """(state, training state dicts, history) of the last finished epoch; restores weights and RNG."""
    state = read_json(resume_dir / "last.json")
    load_weights(module, resume_dir / "last.safetensors")
    training = torch.load(resume_dir / "last.pt", map_location="cpu", weights_only=True)
    torch.set_rng_state(training["rng"]["torch"])
    if "cuda" in training["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(training["rng"]["cuda"])
    history = pd.read_csv(resume_dir / HISTORY)
    # history.csv is written before last.json: drop a row of an epoch that did not complete.
    return state, training, history[history["epoch"] <= state["epoch"]].reset_index(drop=True)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def can_resume(resume_dir: Path, state: Mapping[str, Any], free_keys: tuple[str, ...]) -> bool:
    """Whether ``resume_dir`` holds a run of the same model, data and spec (up to ``free_keys``)."""
    if not (resume_dir / "last.json").exists():
        return False
    saved = read_json(resume_dir / "last.json")

    def fixed(s: Mapping[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in s["spec"].items() if k not in free_keys}
        return {"family": s["family"], "args": s["args"], "answers": s["answers"], "spec": spec}

    # A JSON round trip makes tuples and lists compare equal.
    if _jsonable(fixed(saved)) != _jsonable(fixed(state)):
        log.warning("%s belongs to a different configuration: starting afresh", resume_dir)
        return False
    return True


def finalise(resume_dir: Path, out_dir: Path, state: Mapping[str, Any]) -> None:
    """Publish the best weights, the final state and the history as the run's outputs."""
    with atomic_path(out_dir / WEIGHTS) as tmp:
        shutil.copyfile(resume_dir / "best.safetensors", tmp)
    with atomic_path(out_dir / HISTORY) as tmp:
        shutil.copyfile(resume_dir / HISTORY, tmp)
    write_json(dict(state), out_dir / STATE)


def load_checkpoint(model_dir: str | Path) -> tuple[BuiltModel, dict[str, Any]]:
    """Rebuild the best model of a run from its directory alone; returns (model, state.json)."""
    model_dir = Path(model_dir)
    state = read_json(model_dir / STATE)
    model = rebuild_model(state["family"], state["args"])
    load_weights(model.module, model_dir / WEIGHTS)
    model.module.eval()
    return model, state
