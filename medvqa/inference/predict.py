"""Inference stage: a trained (or zero-shot) run + one split →
``results/predictions/{dataset}/{model}/{seed}/{split}.parquet``.

The model is rebuilt from the run directory alone (state.json + best.safetensors; a zero-shot
run is the pretrained model itself); the split is read as the family reads it in training.
The family's ``predict`` writes the columns:

* classifier families: question_id (str), prediction (str, the most probable answer),
  confidence (float, its softmax probability), topk_answers (list<str>), topk_probs
  (list<float>, descending);
* generative families: question_id, prediction (generated, stripped), confidence (float, the
  answer's token-probability product or mean, per ``generate.confidence``), answer_prob
  (product), answer_prob_mean, samples (list<str>, ``generate.num_samples`` sampled answers).

Families with question-guided attention (cnn_lstm) can also write, for the figures stage,
``{split}.attention.npy`` float32 (n_questions, h, w), each map summing to 1, and
``{split}.attention.ids.json``, the question_id of each map (the parquet's row order).

    python -m medvqa.inference.predict --config config.yaml --dataset demo --model cnn_lstm_demo --seed 0 --split test
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medvqa import paths
from medvqa.families import ModelConfig
from medvqa.inference.shards import parse_shard, shard_rows
from medvqa.io import atomic_path, cli_description, setup_logging, write_json, write_parquet
from medvqa.models.batch import SplitPaths
from medvqa.models.checkpoint import load_checkpoint
from medvqa.models.common import PredictRun, autocast, place, resolve_device, resolve_precision
from medvqa.models.registry import family_of
from medvqa.models.specs import GenerationSpec, PredictSpec
from medvqa.seed import seed_everything
from medvqa.config_files import load_workflow_config

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_split(
    model_dir: str | Path, split: SplitPaths, spec: PredictSpec, generation: GenerationSpec | None = None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Predictions of the run's best checkpoint for every question of ``split``, in file order,
    and the attention maps (n, h, w) when the family has them (else None). ``generation.backend``
    vllm: vLLM answers instead (``medvqa.inference.vllm_backend``; ``spec``'s device and precision are vLLM's)."""
    if generation is not None and generation.backend == "vllm":
        from medvqa.inference import vllm_backend  # the optional vllm package is imported only there

        return vllm_backend.predict_split(model_dir, family_of("vlm_sft").dataset(split, ()), generation)
    model, state = load_checkpoint(model_dir)
    family, answers = family_of(model.family), state["answers"]
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    module = place(model.module, device).eval()
    run = PredictRun(device, spec.batch_size, spec.top_k, generation or GenerationSpec())
    with autocast(device, precision):
        return family.predict(module, model.args, answers, family.dataset(split, answers), run)


def write_attention(
    attention: np.ndarray, question_ids: list[str], npy_path: str | Path, ids_path: str | Path
) -> None:
    with atomic_path(npy_path) as tmp, open(tmp, "wb") as f:
        np.save(f, attention.astype(np.float32))
    write_json(question_ids, ids_path)


def run_prediction(
    model_dir: str | Path, split: SplitPaths, out_path: str | Path, spec: PredictSpec,
    attention_paths: tuple[str | Path, str | Path] | None = None, threads: int | None = None,
    generation: GenerationSpec | None = None, shard: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Seed, predict, write the predictions parquet and (if paths are given) the attention maps.

    ``generation``: how a generative family decodes (the model entry's ``generate:``);
    ``shard`` (k, n): only the questions of shard k of n (``medvqa.inference.shards``).
    """
    if threads:
        torch.set_num_threads(threads)
    seed_everything(0)  # greedy answers are deterministic; seeded for the sampled ones
    with shard_rows(split.parquet, "question_id", shard) as rows:
        predictions, attention = predict_split(model_dir, dataclasses.replace(split, parquet=rows), spec, generation)
    if attention_paths:
        if attention is None:
            raise ValueError(f"the model in {model_dir} has no attention maps to write")
        write_attention(attention, predictions["question_id"].tolist(), *attention_paths)
    write_parquet(predictions, out_path)
    log.info("%d predictions → %s", len(predictions), out_path)
    return predictions


def split_from_config(
    config: Mapping[str, Any], dataset: str, model: str, split: str, results: str | Path
) -> SplitPaths:
    """The split's files in the workflow's path grammar (``medvqa.paths``: derived views included)."""
    tokenizer = config["models"][model].get("tokenizer")
    inputs = paths.split_inputs(config, dataset, split, tokenizer, str(results))
    return SplitPaths.from_inputs(inputs, split, config["datasets"][dataset]["image_size"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medvqa.inference.predict", description=cli_description(__doc__))
    parser.add_argument("--config", required=True, help="workflow config.yaml")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, help="a key of the config's models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test")
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", help="default results/predictions/{dataset}/{model}/{seed}/{split}.parquet")
    parser.add_argument("--attention", action="store_true", help="also write {split}.attention.npy/.ids.json")
    parser.add_argument("--device", help="override predict.device")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--shard", type=parse_shard,
                        help="K/N: only the questions of shard K of N (medvqa.inference.shards)")
    parser.add_argument("--log", help="log file (default stderr)")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    config = load_workflow_config(args.config)
    run = Path(paths.scoring_run_dir(config, args.dataset, args.model, args.seed, args.results))
    out = args.out or paths.predictions(args.dataset, args.model, args.seed, args.split, args.results)
    settings = {**config.get("predict", {}), **({"device": args.device} if args.device else {})}
    stem = str(out).removesuffix(".parquet")
    entry = ModelConfig.from_mapping(config["models"][args.model], f"models.{args.model}")
    run_prediction(
        run, split_from_config(config, args.dataset, args.model, args.split, args.results), out,
        PredictSpec.from_mapping(settings, "predict"),
        (f"{stem}.attention.npy", f"{stem}.attention.ids.json") if args.attention else None, args.threads,
        entry.generation(), args.shard,
    )


if __name__ == "__main__":
    main()
