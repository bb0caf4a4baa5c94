# Shared input functions and the wildcard vocabulary. No rule lives here.

import json
import os

from medvqa.data.schema import SPLITS
from medvqa.workflow_config import check_config, expand_experiments, import_mapping, source_dataset

expand_experiments(config)
check_config(config)

# The workflow's directory, relative to the working directory (a moved project keeps it): shell
# rules that run python -m medvqa (train_ddp) put it on PYTHONPATH, which conda jobs do not inherit.
CHECKOUT = os.path.relpath(workflow.basedir)


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    split="|".join(SPLITS),
    tokenizer="|".join(config["tokenizers"]) or "NONE",
    size=r"\d+",
    shard=r"\d+",


def canonical(mapping):
    """Keys sorted at every level: Snakemake compares params as written, so reordering a
    config's keys must not look like a parameter change and rebuild everything."""
    return json.loads(json.dumps(mapping, sort_keys=True))


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def source_files(pattern):
    """Input function: a file of the dataset's imported source (shared by derived views)."""

    def files(wildcards):
        return pattern.format(dataset=source_dataset(config, wildcards.dataset), split=wildcards.get("split"))

    return files


def source_splits(key_prefix):
    """Input function: the imported source's split parquets, keyed by key_prefix + split."""

    def files(wildcards):
        base = source_dataset(config, wildcards.dataset)
        return {key_prefix + split: f"results/data/{base}/source/{split}.parquet" for split in SPLITS}

    return files


def leakage_params(wildcards):
    return canonical(dataset_config(wildcards).get("leakage", {}))


def leakage_filter_input(wildcards):
    """The source's leakage.json, for views that drop val/test rows on duplicated images."""
    if dataset_config(wildcards).get("filters", {}).get("leakage", "keep") != "drop":
        return {}
    return {"leakage": f"results/data/{source_dataset(config, wildcards.dataset)}/leakage.json"}


def import_params(wildcards):
    return canonical(import_mapping(dataset_config(wildcards)))


def filter_params(wildcards):
    return canonical(dataset_config(wildcards).get("filters", {}))


def image_size_param(wildcards):
    return dataset_config(wildcards)["image_size"]


def tokenizer_params(wildcards):
    return canonical(config["tokenizers"][wildcards.tokenizer])


def split_files(pattern):
    """Input function: one path per split, keyed by split, from a pattern with {dataset}."""

    def files(wildcards):
        return {split: pattern.format(dataset=wildcards.dataset, split=split) for split in SPLITS}

    return files


def tokenizer_inputs(wildcards):
    """The split itself, plus the word vocabulary or a tokenizer directory built by the workflow."""
    inputs = {"split": f"results/data/{wildcards.dataset}/{wildcards.split}.parquet"}
    spec = config["tokenizers"][wildcards.tokenizer]
    if spec["kind"] == "words":
        inputs["vocab"] = f"results/data/{wildcards.dataset}/tokens/{wildcards.tokenizer}.vocab.json"
    elif spec["path"].startswith("results/"):
        inputs["tokenizer_dir"] = spec["path"]
    return inputs


def data_targets():
    """Every data-stage output of every configured dataset."""
    targets = []
    for dataset, d in config["datasets"].items():
        if "derived_from" in d:
            continue  # experiment grid views: built when an experiment asks for them
        root = f"results/data/{dataset}"
        targets += [f"{root}/summary.json", f"{root}/leakage.json"]
        if d.get("task", "vqa") == "vqa":
            targets.append(f"{root}/answers.json")
        targets += [f"{root}/images_{d['image_size']}.{split}.npy" for split in SPLITS]
        targets += [f"{root}/tokens/{tok}.{split}.parquet" for tok in d.get("tokenizers", []) for split in SPLITS]
    return targets
