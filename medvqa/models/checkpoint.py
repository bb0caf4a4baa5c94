"""Checkpoint files of one training run, and rebuilding a model from them.

Layout of ``results/models/{dataset}/{model}/{seed}/``:
  best.safetensors   weights of the epoch with the best validation metric       (final output)
                     (every weight, or only the trainable ones for families with
                     ``saves="trainable"``: the frozen rest is the pretrained checkpoint)
  state.json         family, builder args, answers, spec, monitor, epoch, best epoch/metric
  history.csv        epoch, train/val loss (+ accuracy for classifiers), lr, seconds
  hf_model/, adapter/  blip / vlm_sft: the best model in Hugging Face / PEFT format (the family's export)
  resume/            written every epoch while training, read when a killed run is re-run:
    last.safetensors   weights after the last finished epoch
    last.pt            optimizer, scheduler, grad-scaler and RNG state (torch.load weights_only)
    best.safetensors   best weights so far
    history.csv        one row per finished epoch
    last.json          the state (+ the input files' stamps); written last, so it names the
                       last *complete* epoch
    train.lock         held (flock) by the one process that trains this run; holds its pid

The final outputs appear only when training ends, so a workflow manager that deletes the
outputs of a killed job leaves ``resume/`` in place for the re-run. It also survives a finished
run: a re-run with more ``epochs`` continues from the last one. A re-run whose settings (other
than epochs, patience, device, workers, gpus) or input files (data splits, image cache, tokens,
answers, pretrained checkpoints: sizes and modification times) differ starts afresh.

Only one process may write a run: ``run_lock`` takes an exclusive lock on ``train.lock`` for the
whole training, and a second trainer of the same directory (an orphaned job of a killed Snakemake
still running when the workflow is unlocked and re-run) fails at once naming the holder's pid.

A zero-shot run (``medvqa.models.common.finetuned(args)`` false: no ``train:`` block) has state.json with epoch 0 and
a header-only history.csv, and no weights: prediction uses the pretrained model as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medvqa.io import atomic_path, read_json, write_csv, write_json
from medvqa.models.common import finetuned
from medvqa.models.registry import BuiltModel, family_of, rebuild_model
from medvqa.paths import BEST_WEIGHTS

log = logging.getLogger(__name__)

WEIGHTS, STATE, HISTORY, RESUME = BEST_WEIGHTS, "state.json", "history.csv", "resume"
LOCK = "train.lock"
# State kept in resume/last.json only: input file stamps change whenever a stage rebuilds a file,
# and state.json must stay the same for the same training (local and cluster runs compare equal).
RESUME_ONLY_KEYS = ("inputs",)


class RunLockedError(RuntimeError):
    """Another live process trains the same run directory; the message names its pid."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir/resume/train.lock`` (flock: the kernel releases it when
    the holder exits, even by kill -9, so a stale lock file never blocks a re-run). It lives in the
    private resume/ state, so a run's outputs stay the same whoever trained them."""
    path = Path(run_dir) / RESUME / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        pid = re.search(r"pid (\d+)", holder)
        raise RunLockedError(
            f"{Path(run_dir)} is being trained by another process ({holder}): a second writer would "
            f"corrupt {RESUME}/. Wait for it to finish, or stop it (kill {pid[1] if pid else '<pid>'}) and re-run"
        ) from None
    os.ftruncate(fd, 0)
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def saved_tensors(module: nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The module's state dict (weights and buffers), or only its trainable parameters."""
    if trainable_only:
        return {name: p for name, p in module.named_parameters() if p.requires_grad}
    return module.state_dict()


def save_weights(module: nn.Module, path: str | Path, trainable_only: bool = False) -> None:
    """``saved_tensors`` as safetensors."""
    # Every tensor gets its own CPU copy: on CUDA, cuDNN packs the LSTM weights into one
    # buffer, which safetensors would refuse as shared storage.
    state = {
        name: t.detach().to("cpu", copy=True).contiguous() for name, t in saved_tensors(module, trainable_only).items()
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_weights(module: nn.Module, path: str | Path, trainable_only: bool = False) -> None:
    """Load what ``save_weights`` wrote; with ``trainable_only`` exactly the trainable parameters."""
    state = load_file(str(path), device="cpu")
    if not trainable_only:
        module.load_state_dict(state, strict=True)
        return
    expected = set(saved_tensors(module, trainable_only=True))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"{path} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    module.load_state_dict(state, strict=False)


def save_progress(
    resume_dir: Path, module: nn.Module, state: Mapping[str, Any], training: Mapping[str, Any],
    history: pd.DataFrame, improved: bool, trainable_only: bool = False,
) -> None:
    """Write one finished epoch; ``training`` holds optimizer/scheduler/scaler state dicts."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    if improved:
        save_weights(module, resume_dir / "best.safetensors", trainable_only)
    save_weights(module, resume_dir / "last.safetensors", trainable_only)
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    with atomic_path(resume_dir / "last.pt") as tmp:
        torch.save({**training, "rng": rng}, tmp)
    write_csv(history, resume_dir / HISTORY)
    write_json(dict(state), resume_dir / "last.json")


def load_progress(
    resume_dir: Path, module: nn.Module, trainable_only: bool = False
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """(state, training state dicts, history) of the last finished epoch; restores weights and RNG."""
    state = read_json(resume_dir / "last.json")
    load_weights(module, resume_dir / "last.safetensors", trainable_only)
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
    """Whether ``resume_dir`` holds a run of the same model, spec (up to ``free_keys``) and input
    files (their stamps in ``state["inputs"]``)."""
    if not (resume_dir / "last.json").exists():
        return False
    saved = read_json(resume_dir / "last.json")

    def fixed(s: Mapping[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in s["spec"].items() if k not in free_keys}
        return {"family": s["family"], "args": s["args"], "answers": s["answers"], "spec": spec,
                "inputs": s.get("inputs"), "monitor": s.get("monitor")}

    # A JSON round trip makes tuples and lists compare equal.
    if _jsonable(fixed(saved)) != _jsonable(fixed(state)):
        log.warning("%s belongs to a different configuration: starting afresh", resume_dir)
        return False
    return True


def published(state: Mapping[str, Any]) -> dict[str, Any]:
    """state.json's content: the state without ``RESUME_ONLY_KEYS``."""
    return {key: value for key, value in state.items() if key not in RESUME_ONLY_KEYS}


def finalise(resume_dir: Path, out_dir: Path, state: Mapping[str, Any]) -> None:
    """Publish the best weights, the final state and the history as the run's outputs."""
    with atomic_path(out_dir / WEIGHTS) as tmp:
        shutil.copyfile(resume_dir / "best.safetensors", tmp)
    with atomic_path(out_dir / HISTORY) as tmp:
        shutil.copyfile(resume_dir / HISTORY, tmp)
    write_json(published(state), out_dir / STATE)


def write_zero_shot(out_dir: str | Path, state: Mapping[str, Any], history_columns: tuple[str, ...]) -> None:
    """The run directory of a model that is not trained: state.json and a history without epochs."""
    out_dir = Path(out_dir)
    write_csv(pd.DataFrame(columns=list(history_columns)), out_dir / HISTORY)
    write_json(published(state), out_dir / STATE)


def resolve_run_path(value: Any, model_dir: str | Path) -> Any:
    """A relative path of a run's state.json (``results/pretrained/...``, relative to the directory
    training ran in) as a path that exists from here: unchanged when it exists from the working
    directory, else joined to the nearest ancestor of ``model_dir`` that holds it. Hub ids and
    other values come back unchanged."""
    if not isinstance(value, str) or "/" not in value or Path(value).is_absolute():
        return value
    try:  # a prompt with a "/" may be no valid path at all (a name too long, say)
        if Path(value).exists():
            return value
        return next((str(p / value) for p in Path(model_dir).resolve().parents if (p / value).exists()), value)
    except OSError:
        return value


def load_checkpoint(model_dir: str | Path) -> tuple[BuiltModel, dict[str, Any]]:
    """Rebuild the best model of a run from its directory alone; returns (model, state.json).

    Works from any working directory: relative checkpoint paths in the builder args resolve
    against the run's ancestors (``resolve_run_path``; the model's ``args`` hold the resolved
    paths, state.json's are as written). Zero-shot runs (no weights file) give the pretrained
    model as it is.
    """
    model_dir = Path(model_dir)
    state = read_json(model_dir / STATE)
    family = family_of(state["family"])
    args = {key: resolve_run_path(value, model_dir) for key, value in state["args"].items()}
    model = rebuild_model(state["family"], args)
    if finetuned(state["args"]):
        load_weights(model.module, model_dir / WEIGHTS, trainable_only=family.saves == "trainable")
    model.module.eval()
    return model, state


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[BuiltModel, dict[str, Any]]:
    """The trained model of a run directory, any family, for use outside the workflow: ``load_checkpoint``
    with the module in eval mode on ``device``. Returns ``(model, state)``: ``model.module`` the torch
    module, ``model.family`` / ``model.args`` its family and (resolved) builder arguments, ``state``
    state.json (``answers``: a classifier's classes in logit order). BLIP and vlm_sft runs also hold
    their Hugging Face / PEFT export (``hf_model/``, ``adapter/``; README "Load a trained model")."""
    model, state = load_checkpoint(run_dir)
    model.module.to(device).eval()
    return model, state
