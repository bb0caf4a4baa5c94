"""Training stage: data-stage outputs → ``results/models/{dataset}/{model}/{seed}/``.

Reads the train and val splits (parquet without image bytes, memory-mapped image cache,
pre-tokenised questions), answers.json and, for ``words`` tokenizers, the vocabulary; writes
best.safetensors, state.json, history.csv and resume/ (see ``medvqa.training.checkpoint``).

    python -m medvqa.train --config config.yaml --dataset demo --model cnn_lstm_demo --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from medvqa.io import read_json, setup_logging
from medvqa.models import MODEL_FAMILIES, DataInfo, build_model, family_of
from medvqa.spec import ConfigError, Spec, check_choice
from medvqa.training.data import SplitPaths, VQASplit
from medvqa.training.engine import TrainData, TrainSpec, train
from medvqa.training.seed import seed_everything

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Spec):
    """One entry of ``config["models"]``."""

    family: str  # a key of medvqa.models.MODEL_FAMILIES
    tokenizer: str  # a key of config["tokenizers"]: how the questions were tokenised
    model: dict = dataclasses.field(default_factory=dict)  # the family's builder spec
    train: dict = dataclasses.field(default_factory=dict)  # TrainSpec

    def validate(self, where: str) -> None:
        check_choice(where, "family", self.family, tuple(MODEL_FAMILIES))
        family_of(self.family).spec.from_mapping(self.model, f"{where}.model")
        if "seed" in self.train:
            raise ConfigError(f"{where}.train: 'seed' comes from the {{seed}} wildcard or --seed")
        TrainSpec.from_mapping(self.train, f"{where}.train")


@dataclasses.dataclass(frozen=True)
class TrainPaths:
    train: SplitPaths
    val: SplitPaths
    answers: str | Path  # results/data/{dataset}/answers.json
    vocab: str | Path | None = None  # tokens/{tokenizer}.vocab.json (kind "words" only)

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, str]) -> TrainPaths:
        """From the named inputs of the train rule (see ``SplitPaths.from_inputs``)."""
        return cls(
            SplitPaths.from_inputs(inputs, "train"), SplitPaths.from_inputs(inputs, "val"),
            inputs["answers"], inputs.get("vocab"),
        )


def load_data(paths: TrainPaths) -> tuple[TrainData, DataInfo]:
    answers = read_json(paths.answers)["answers"]
    vocab = read_json(paths.vocab) if paths.vocab else None
    pad_id = vocab["pad_id"] if vocab else 0  # hf ids: padding is masked, any id will do
    train_split, val_split = VQASplit(paths.train, answers), VQASplit(paths.val, answers)
    info = DataInfo(
        n_answers=len(answers), image_size=train_split.image_size,
        vocab_size=len(vocab["tokens"]) if vocab else None, pad_id=pad_id,
    )
    log.info("train %d / val %d questions, %d answers", len(train_split), len(val_split), len(answers))
    return TrainData(train_split, val_split, answers, pad_id), info


def run_training(
    config: ModelConfig, paths: TrainPaths, out_dir: str | Path, seed: int, threads: int | None = None
) -> dict[str, Any]:
    """Seed, load the data, build the model and train it; returns the final state.json."""
    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    spec = TrainSpec.from_mapping({**config.train, "seed": seed}, "train")
    if (paths.vocab is None) != (family_of(config.family).token_kind == "hf"):
        raise ConfigError(
            f"family {config.family} needs a tokenizer of kind {family_of(config.family).token_kind!r}; "
            f"tokenizer {config.tokenizer!r} is not"
        )
    data, info = load_data(paths)
    model = build_model(config.family, config.model, info)
    return train(spec, model, data, out_dir)


def paths_from_config(config: Mapping[str, Any], dataset: str, model: str, results: str | Path) -> TrainPaths:
    """The train/val inputs of ``model`` on ``dataset`` in the workflow's path grammar."""
    tokenizer = config["models"][model]["tokenizer"]
    size = config["datasets"][dataset]["image_size"]
    root = Path(results) / "data" / dataset
    words = config["tokenizers"][tokenizer]["kind"] == "words"
    return TrainPaths(
        SplitPaths.from_grammar(results, dataset, "train", size, tokenizer),
        SplitPaths.from_grammar(results, dataset, "val", size, tokenizer),
        root / "answers.json",
        root / "tokens" / f"{tokenizer}.vocab.json" if words else None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medvqa.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="workflow config.yaml")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, help="a key of the config's models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results", help="results directory of the data stages")
    parser.add_argument("--out", help="output directory (default results/models/{dataset}/{model}/{seed})")
    parser.add_argument("--device", help="override train.device (cpu, cuda, cuda:1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--log", help="log file (default stderr)")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    config = yaml.safe_load(Path(args.config).read_text())
    entry = config["models"][args.model]
    if args.device:
        entry = {**entry, "train": {**entry.get("train", {}), "device": args.device}}
    out = args.out or Path(args.results) / "models" / args.dataset / args.model / str(args.seed)
    run_training(
        ModelConfig.from_mapping(entry, f"models.{args.model}"),
        paths_from_config(config, args.dataset, args.model, args.results), out, args.seed, args.threads,
    )


if __name__ == "__main__":
    main()
