"""The inputs and params of one workflow job, from the config and the job's wildcards.

Each function is ``f(config, w)`` with ``w`` the job's wildcards as a plain dict (``dataset``,
``split``, ``model``, ``seed``, ``tokenizer``, ``name``, ``shard`` as its rule has them);
``rules/common.smk`` turns each into a Snakemake input / params function with one line. Paths
come from ``medvqa.paths`` (derived views included), run selections from ``medvqa.targets``.
Params are ``canonical``: Snakemake compares params as written, so reordering a config's keys
must not look like a parameter change and rebuild everything. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from medvqa import paths, targets
from medvqa.data.baselines import BASELINE_RULES
from medvqa.families import FAMILIES
from medvqa.workflow_config import import_mapping

Config = Mapping[str, Any]
Wildcards = Mapping[str, str]


def canonical(mapping: Any) -> Any:
    """Keys sorted at every level (see the module docstring)."""
    return json.loads(json.dumps(mapping, sort_keys=True))


# --- data ---


def leakage_filter_input(config: Config, w: Wildcards) -> dict[str, str]:
    """The source's leakage.json, for views that drop val/test rows on duplicated images."""
    if config["datasets"][w["dataset"]].get("filters", {}).get("leakage", "keep") != "drop":
        return {}
    return {"leakage": f"{paths.data_dir(paths.source_dataset(config, w['dataset']))}/leakage.json"}


def tokenizer_inputs(config: Config, w: Wildcards) -> dict[str, str]:
    """The split itself, plus the word vocabulary or a tokenizer directory built by the workflow."""
    inputs = {"split": paths.split_parquet(w["dataset"], w["split"])}
    spec = config["tokenizers"][w["tokenizer"]]
    if spec["kind"] == "words":
        inputs["vocab"] = paths.vocab(w["dataset"], w["tokenizer"])
    elif spec["path"].startswith("results/"):
        inputs["tokenizer_dir"] = spec["path"]
    return inputs


def import_params(config: Config, w: Wildcards) -> dict:
    return canonical(import_mapping(config["datasets"][w["dataset"]]))


def image_cache_files(config: Config, w: Wildcards) -> dict[str, str]:
    """{"images", "image_ids"} of the split (a derived view may read its base's)."""
    return paths.image_cache(config, w["dataset"], w["split"])


def summary_cache_files(config: Config, w: Wildcards) -> dict[str, str]:
    """``{split}_images`` / ``{split}_image_ids`` of the cache files whose bytes summary.json states
    (none for image_cache: none, whose images are the split parquets)."""
    if config["datasets"][w["dataset"]].get("image_cache", "raw") == "none":
        return {}
    caches = {split: paths.image_cache(config, w["dataset"], split) for split in paths.SPLITS}
    return {f"{split}_{key}": f for split, cache in caches.items() for key, f in cache.items()}


def baseline_image_inputs(config: Config, w: Wildcards) -> dict[str, str]:
    """The train and the scored split's image caches (nearest-neighbour caption baseline)."""
    train = paths.image_cache(config, w["dataset"], "train")
    return {"train_images": train["images"], "train_image_ids": train["image_ids"], **image_cache_files(config, w)}


# --- pretrained, train, infer, caption ---


def pretrained_train_splits(config: Config, w: Wildcards) -> list[str]:
    """The train splits whose texts the tiny tokenizer learns (text_from, default [dataset])."""
    entry = config["pretrained"][w["name"]]
    return [paths.split_parquet(name, "train") for name in entry.get("text_from", [entry["dataset"]])]


def pretrained_image_size(config: Config, w: Wildcards) -> int:
    """Checkpoint images are as large as the dataset's image cache, so no resizing happens."""
    return config["datasets"][config["pretrained"][w["name"]]["dataset"]]["image_size"]


def _with_pretrained(config: Config, w: Wildcards, inputs: dict) -> dict:
    """``inputs`` plus the workflow-built checkpoint directories the model reads (if any)."""
    built = targets.pretrained_dirs(config, config["models"][w["model"]])
    return {**inputs, "pretrained": built} if built else inputs


def train_inputs(config: Config, w: Wildcards) -> dict:
    """train + val splits, answers.json (VQA datasets), the word vocabulary, the pretrained checkpoints
    and the weights of the run that train.init_from names (same dataset and seed: SFT then GRPO)."""
    return _with_pretrained(config, w, paths.train_inputs(config, w["dataset"], w["model"], seed=w["seed"]))


def train_gpus(config: Config, w: Wildcards) -> int:
    return targets.entry_gpus(config["models"][w["model"]])


def train_entry_json(config: Config, w: Wildcards) -> str:
    """The model entry for python -m medvqa.training.train --entry (shell-quoted with :q where used)."""
    return json.dumps(canonical(config["models"][w["model"]]))


def train_inputs_json(config: Config, w: Wildcards) -> str:
    """The named data inputs for python -m medvqa.training.train --inputs (TrainPaths.from_inputs)."""
    return json.dumps(paths.train_inputs(config, w["dataset"], w["model"], seed=w["seed"]))


def family_mem_mb(config: Config, w: Wildcards) -> int:
    return FAMILIES[config["models"][w["model"]]["family"]].mem_mb


def _run(config: Config, w: Wildcards) -> str:
    """The run that answers or captions this view (a clean view: its twin's)."""
    return paths.scoring_run_dir(config, w["dataset"], w["model"], w["seed"])


def predict_inputs(config: Config, w: Wildcards) -> dict:
    """The run's state (+ best weights unless zero-shot), the split's files, the pretrained checkpoints."""
    entry, run = config["models"][w["model"]], _run(config, w)
    split = paths.split_inputs(config, w["dataset"], w["split"], entry.get("tokenizer"))
    inputs = {"state": f"{run}/state.json", **split}
    if not targets.is_zero_shot(entry):
        inputs["weights"] = f"{run}/{paths.BEST_WEIGHTS}"
    return _with_pretrained(config, w, inputs)


def shard_param(config: Config, w: Wildcards) -> list[int]:
    """(k, n) of a shard job."""
    return [int(w["shard"]), targets.n_shards(config, w["model"])]


def caption_inputs(config: Config, w: Wildcards) -> dict:
    """The split, its image cache, the training run (fine-tuned), the built checkpoints."""
    inputs = {"data": paths.split_parquet(w["dataset"], w["split"]), **image_cache_files(config, w)}
    if targets.trains(config, w["model"]):
        run = _run(config, w)
        inputs.update(state=f"{run}/state.json", weights=f"{run}/best.safetensors")
    return _with_pretrained(config, w, inputs)


def caption_params(config: Config, w: Wildcards) -> dict:
    """The CaptionSpec mapping: the entry's caption: settings plus its kind and base checkpoint."""
    entry = config["models"][w["model"]]
    kind = FAMILIES[entry["family"]].caption_kind
    return canonical({**entry["caption"], "kind": kind, "checkpoint": entry["model"].get("checkpoint")})


# --- evaluate, figures, leakage report ---


def llava_med_candidates_input(config: Config, w: Wildcards) -> dict[str, str]:
    """The LLaVA-Med candidate file configured for the dataset (or the source it filters), if any."""
    files = config.get("evaluate", {}).get("llava_med_candidates", {})
    path = files.get(w["dataset"]) or files.get(paths.source_dataset(config, w["dataset"]))
    return {} if path is None else {"candidates": path}


def score_params(config: Config, w: Wildcards) -> dict:
    """The scoring spec of one score job: ``evaluate:`` with only this dataset's candidate file (so
    its metrics JSON states the file it used, and another dataset's file is not a param of this job)."""
    evaluate = {k: v for k, v in config.get("evaluate", {}).items() if k != "llava_med_candidates"}
    files = llava_med_candidates_input(config, w)
    if files:
        evaluate["llava_med_candidates"] = {w["dataset"]: files["candidates"]}
    return canonical(evaluate)


def score_run(config: Config, w: Wildcards) -> dict:
    """The model behind the scored file (entry, run directory), for the metrics JSON's provenance."""
    if w["model"] in BASELINE_RULES:  # a baseline is no configured model: its rule identifies it
        entry = {"family": "baseline", "rule": BASELINE_RULES[w["model"]]}
    else:
        entry = config["models"][w["model"]]
    run_dir = paths.run_dir(w["dataset"], w["model"], w["seed"])
    return canonical({"model": w["model"], "seed": int(w["seed"]), "run_dir": run_dir, "entry": entry})


def run_seeds(config: Config, w: Wildcards) -> list[int]:
    """Params of aggregate_seeds: the seeds, in the order of seed_metrics."""
    return targets.model_seeds(config, w["dataset"], w["model"])


def seed_metrics(config: Config, w: Wildcards) -> list[str]:
    return [paths.metrics(w["dataset"], w["model"], s, w["split"]) for s in run_seeds(config, w)]


def run_histories(config: Config, w: Wildcards) -> list[str]:
    """Every seed's history.csv of the model (an output of the training rule)."""
    return [f"{paths.scoring_run_dir(config, w['dataset'], w['model'], s)}/history.csv" for s in run_seeds(config, w)]


def dataset_runs(config: Config, w: Wildcards) -> list[list]:
    """Params of the per-dataset rules: [model, seed] pairs, in the order of their inputs."""
    return targets.dataset_runs(config, w["dataset"])


def dataset_metrics(config: Config, w: Wildcards) -> list[str]:
    return [paths.metrics(w["dataset"], m, s, w["split"]) for m, s in dataset_runs(config, w)]


def dataset_predictions(config: Config, w: Wildcards) -> list[str]:
    return [paths.predictions(w["dataset"], m, s, w["split"]) for m, s in dataset_runs(config, w)]


def table_runs(config: Config, w: Wildcards) -> list[list]:
    """Params of the results table and comparison figure: the model runs, then the baselines."""
    return dataset_runs(config, w) + targets.baseline_runs(config, w["dataset"])


def table_metrics(config: Config, w: Wildcards) -> list[str]:
    return [paths.metrics(w["dataset"], m, s, w["split"]) for m, s in table_runs(config, w)]


def published_entries(config: Config, w: Wildcards) -> list:
    """Params of published_table: the config's published numbers of this dataset."""
    return canonical([e for e in config.get("report", {}).get("published", []) if e["dataset"] == w["dataset"]])


def clean_original(config: Config, w: Wildcards) -> str:
    return targets.clean_pairs(config)[w["dataset"]]


def original_runs(config: Config, w: Wildcards) -> list[list]:
    """Params of clean_table: [model, seed] of the original view, aligned with original_metrics."""
    return targets.dataset_runs(config, clean_original(config, w))


def original_metrics(config: Config, w: Wildcards) -> list[str]:
    original = clean_original(config, w)
    return [paths.metrics(original, m, s, w["split"]) for m, s in original_runs(config, w)]
