"""Training stage: data-stage outputs → ``results/models/{dataset}/{model}/{seed}/``.

Reads the train and val splits (parquet without image bytes, memory-mapped image cache, and,
for the classifier families, pre-tokenised questions), answers.json (VQA datasets; caption
datasets have none) and, for ``words`` tokenizers, the vocabulary; writes best.safetensors,
state.json, history.csv and resume/ (see ``medvqa.models.checkpoint``). Every family trains
through ``medvqa.training.engine.train``, except ``vlm_sft`` entries with ``train.method: grpo``
(``medvqa.training.grpo``); ``train.init_from`` first loads another run's trained weights
(``TrainPaths.init_from``). A zero-shot entry (no ``train:`` block; ``blip`` and ``vlm_sft`` only) writes
state.json and an empty history only.

    python -m medvqa.training.train --config config.yaml --dataset demo --model cnn_lstm_demo --seed 0

Data-parallel on N GPUs (``medvqa.training.distributed``; rank 0 writes the outputs and the log):

    torchrun --standalone --nproc_per_node=N -m medvqa.training.train --config ... --dataset ... --model ...

Under torchrun, log to stderr (``2> train.log``), not with ``--log``: torchrun's own argument
parser takes ``--log`` as an abbreviation of its ``--log-dir``. The workflow's rule ``train_ddp`` passes the model entry and its named inputs as JSON instead
(``--entry``, ``--inputs``, ``--out``), so the run sees exactly the entry the workflow resolved.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medvqa.data.schema import split_task
from medvqa import paths
from medvqa.families import ModelConfig
from medvqa.io import cli_description, file_stamp, read_json, setup_logging
from medvqa.models import checkpoint
from medvqa.models.batch import SplitPaths
from medvqa.models.registry import BuiltModel, DataInfo, family_of
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError
from medvqa.training import distributed
from medvqa.training.engine import TrainData, TrainSpec, fresh_state, history_columns, train
from medvqa.config_files import load_workflow_config

log = logging.getLogger(__name__)

__all__ = ["ModelConfig", "TrainPaths", "load_data", "paths_from_config", "run_training"]


@dataclasses.dataclass(frozen=True)
class TrainPaths:
    train: SplitPaths
    val: SplitPaths
    answers: str | Path | None = None  # results/data/{dataset}/answers.json (VQA datasets only)
    vocab: str | Path | None = None  # tokens/{tokenizer}.vocab.json (kind "words" only)
    # train.init_from: results/models/{dataset}/{init_from}/{seed}/best.safetensors, the adapter this run starts from
    init_from: str | Path | None = None

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, str], image_size: int | None = None) -> TrainPaths:
        """From the named inputs of the train rule (see ``SplitPaths.from_inputs``)."""
        return cls(
            SplitPaths.from_inputs(inputs, "train", image_size), SplitPaths.from_inputs(inputs, "val", image_size),
            inputs.get("answers"), inputs.get("vocab"), inputs.get("init_from"),
        )

    def files(self) -> dict[str, str | Path]:
        """Every input file by name (train, train_images, ..., answers, vocab), as the rule names them."""
        named = {"answers": self.answers, "vocab": self.vocab, "init_from": self.init_from}
        for split, paths in (("train", self.train), ("val", self.val)):
            named.update({split: paths.parquet, f"{split}_images": paths.images,
                          f"{split}_image_ids": paths.image_ids, f"{split}_tokens": paths.tokens})
        return {name: path for name, path in named.items() if path is not None}


def input_stamps(paths: TrainPaths, model: Mapping[str, Any]) -> dict[str, Any]:
    """``file_stamp`` of every data file and of every local checkpoint the model's settings name
    (hub ids are in the settings already): a resumed run must have read the same ones."""
    stamps = {name: file_stamp(path) for name, path in paths.files().items()}
    for key, value in sorted(model.items()):
        if isinstance(value, str) and value and Path(value).exists():
            stamps[f"model.{key}"] = file_stamp(value)
    return stamps


class LoadedData:
    """The two splits as the family reads them, the answers (none for captions), and the facts
    that size a model."""

    def __init__(self, family: str, paths: TrainPaths):
        self.paths = paths
        self.answers = read_json(paths.answers)["answers"] if paths.answers else []
        vocab = read_json(paths.vocab) if paths.vocab else None
        self.pad_id = vocab["pad_id"] if vocab else 0  # hf ids: padding is masked, any id will do
        dataset = family_of(family).dataset
        self.train, self.val = dataset(paths.train, self.answers), dataset(paths.val, self.answers)
        self.info = DataInfo(
            n_answers=len(self.answers), image_size=self.train.image_size,
            vocab_size=len(vocab["tokens"]) if vocab else None, pad_id=self.pad_id,
        )
        log.info("train %d / val %d examples, %d answers", len(self.train), len(self.val), len(self.answers))

    def for_training(self, model: BuiltModel) -> TrainData:
        collate = family_of(model.family).collate(model.args, self.answers, self.pad_id)
        return TrainData(self.train, self.val, list(self.answers), collate, input_stamps(self.paths, model.args))


def load_data(config: ModelConfig, paths: TrainPaths) -> LoadedData:
    if (paths.vocab is not None) != (config.token_kind == "words"):
        raise ConfigError(
            f"family {config.family} reads {config.token_kind or 'raw'} text; tokenizer {config.tokenizer!r} "
            f"{'has' if paths.vocab else 'has no'} word vocabulary"
        )
    task = split_task(paths.train.parquet)
    if task not in config.tasks():
        raise ConfigError(f"{paths.train.parquet} is {task} data; this {config.family} model trains on "
                          f"{' and '.join(config.tasks())} data")
    if task == "vqa" and paths.answers is None:
        raise ConfigError(f"{paths.train.parquet} holds questions: training on it needs its answers.json")
    return LoadedData(config.family, paths)


def run_training(
    config: ModelConfig, paths: TrainPaths, out_dir: str | Path, seed: int, threads: int | None = None
) -> dict[str, Any]:
    """Seed, load the data, build the model and train it; returns the final state.json.

    Under torchrun (WORLD_SIZE > 1) every process runs this inside one process group.
    """
    if threads:
        torch.set_num_threads(threads)
    spec = config.train_spec(seed)
    if spec.gpus > 1 and not distributed.launched():
        log.warning("train.gpus is %d but this is one process: launch with torchrun for data-parallel", spec.gpus)
    with distributed.session(spec.device):
        return _run(config, paths, out_dir, seed, spec)


def _exclusive(out_dir: str | Path):
    """The run directory's lock, taken by the process that writes it (rank 0)."""
    return checkpoint.run_lock(out_dir) if distributed.is_main() else contextlib.nullcontext()


def _run(config: ModelConfig, paths: TrainPaths, out_dir: str | Path, seed: int, spec: TrainSpec) -> dict[str, Any]:
    seed_everything(seed)  # the same on every process: the same initial weights
    data = load_data(config, paths)
    family = family_of(config.family)
    args = family.builder_args(config.model_args(), data.info)
    if config.zero_shot:
        # Nothing to train: the pretrained model is loaded only at prediction time.
        state = fresh_state(spec, config.family, args, data.answers)
        if distributed.is_main():
            checkpoint.write_zero_shot(out_dir, state, history_columns(family))
        log.info("%s is zero-shot: wrote %s only", config.family, Path(out_dir) / checkpoint.STATE)
        return checkpoint.published(state)
    # Only training writes resume/ over many minutes: one writer at a time (zero-shot runs write
    # two small files atomically).
    with _exclusive(out_dir):
        model = BuiltModel(config.family, args, family.build(args, True))
        if spec.init_from:
            start_from(model, spec.init_from, paths.init_from)
        if spec.method == "grpo":
            from medvqa.training.grpo import train_grpo  # imports TRL (the grpo extra) only when asked

            return train_grpo(spec, model, paths.train, out_dir, input_stamps(paths, model.args), data.answers)
        return train(spec, model, data.for_training(model), out_dir)


def start_from(model: BuiltModel, entry: str, weights: str | Path | None) -> None:
    """Load the trained weights of entry ``entry`` (same model settings: its LoRA adapter) into ``model``."""
    if weights is None:
        raise ConfigError(f"train.init_from {entry!r}: no init_from input (that run's best.safetensors) was given")
    checkpoint.load_weights(model.module, weights, trainable_only=family_of(model.family).saves == "trainable")
    log.info("starting from %s (%s)", entry, weights)


def paths_from_config(
    config: Mapping[str, Any], dataset: str, model: str, results: str | Path, seed: int = 0
) -> TrainPaths:
    """The train/val inputs of ``model`` on ``dataset`` (with ``seed``: an init_from run's) in the workflow's
    path grammar (``medvqa.paths``: a derived view reads its base's image caches)."""
    inputs = paths.train_inputs(config, dataset, model, str(results), seed=seed)
    return TrainPaths.from_inputs(inputs, config["datasets"][dataset]["image_size"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m medvqa.training.train", description=cli_description(__doc__))
    parser.add_argument("--config", help="workflow config.yaml (or --entry with --inputs)")
    parser.add_argument("--dataset")
    parser.add_argument("--model", help="a key of the config's models")
    parser.add_argument("--entry", help="the model entry as JSON, instead of --config's models[--model]")
    parser.add_argument("--inputs", help="JSON of the train rule's named inputs, instead of --config's paths")
    parser.add_argument("--image-size", type=int, help="with --inputs: the dataset's image_size (image_cache: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results", help="results directory of the data stages")
    parser.add_argument("--out", help="output directory (default results/models/{dataset}/{model}/{seed})")
    parser.add_argument("--device", help="override train.device (cpu, cuda, cuda:1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--log", help="log file (default stderr)")
    args = parser.parse_args(argv)
    if not ((args.entry and args.inputs and args.out) or (args.config and args.dataset and args.model)):
        parser.error("give --config, --dataset and --model, or --entry, --inputs and --out")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Only rank 0 of a torchrun logs progress (to the log file); the others report only problems.
    if distributed.launched() and int(os.environ.get("RANK", "0")) > 0:
        setup_logging(None, logging.WARNING)
    else:
        setup_logging(args.log)
    config = None if args.entry else load_workflow_config(args.config)
    entry = json.loads(args.entry) if args.entry else config["models"][args.model]
    if args.device and "train" in entry:  # a zero-shot entry (no train:) trains nothing on any device
        entry = {**entry, "train": {**entry["train"], "device": args.device}}
    if args.inputs:
        inputs = TrainPaths.from_inputs(json.loads(args.inputs), args.image_size)
    else:
        inputs = paths_from_config(config, args.dataset, args.model, args.results, args.seed)
    out = args.out or paths.run_dir(args.dataset, args.model, args.seed, args.results)
    run_training(ModelConfig.from_mapping(entry, f"models.{args.model or 'entry'}"), inputs, out, args.seed,
                 args.threads)


if __name__ == "__main__":
    main()
