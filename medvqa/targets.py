"""What the workflow builds for a config: the runs of its experiments, the per-stage target lists
(``data``, ``captions``, ``evaluate``, ``figures`` + leakage) and the model selections that the
rules' wildcard constraints are made of. Torch-free; every function takes the config mapping
(after ``medvqa.config_files.expand_experiments``), so a unit test can enumerate a config's
targets without Snakemake. File names come from ``medvqa.paths``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medvqa import paths
from medvqa.data.baselines import BASELINE_SEED, BASELINES
from medvqa.families import FAMILIES
from medvqa.workflow_config import clean_views

Config = Mapping[str, Any]


def experiment_runs(config: Config) -> list[tuple[str, str, int]]:
    """(dataset, model, seed) of every configured experiment, each once, in config order."""
    runs = {}
    for experiment in config["experiments"]:
        for dataset in experiment["datasets"]:
            for model in experiment["models"]:
                for seed in experiment.get("seeds", [0]):
                    runs[(dataset, model, int(seed))] = None
    return list(runs)


def experiment_datasets(config: Config) -> list[str]:
    """The dataset views of the experiments, each once, in config order."""
    return list(dict.fromkeys(d for d, _, _ in experiment_runs(config)))


def dataset_task(config: Config, dataset: str) -> str:
    return config["datasets"][dataset].get("task", "vqa")


def report_splits(config: Config) -> list[str]:
    """The splits that are scored, compared, plotted and tabulated."""
    return config.get("report", {}).get("splits", ["test"])


def dataset_runs(config: Config, dataset: str) -> list[list]:
    """[model, seed] of every run of a dataset, in config order."""
    return [[m, s] for d, m, s in experiment_runs(config) if d == dataset]


def model_seeds(config: Config, dataset: str, model: str) -> list[int]:
    return sorted(s for d, m, s in experiment_runs(config) if d == dataset and m == model)


def baseline_runs(config: Config, dataset: str) -> list[list]:
    """[baseline, seed] of the dataset's baselines (one deterministic run each)."""
    return [[name, BASELINE_SEED] for name in BASELINES[dataset_task(config, dataset)]]


def is_zero_shot(entry: Mapping[str, Any]) -> bool:
    """An entry without a train: block uses its pretrained checkpoint as loaded (``ModelConfig.zero_shot``)."""
    return "train" not in entry


def trains(config: Config, model: str) -> bool:
    """Whether runs of the model are trained (and so have weights and training curves)."""
    return not is_zero_shot(config["models"][model])


def entry_gpus(entry: Mapping[str, Any]) -> int:
    """GPUs of a training job: train.gpus (more than one: the train_ddp job, under torchrun)."""
    return int(entry.get("train", {}).get("gpus", 1))


def n_shards(config: Config, model: str) -> int:
    """Parallel jobs per split of a model's answers or captions (models.{model}.shards)."""
    return int(config["models"][model].get("shards", 1))


def models_where(config: Config, families: Iterable[str], zero_shot=None, multi_gpu=None, sharded=None) -> list[str]:
    """The configured models of ``families`` (only zero-shot ones, or none, if asked; only those
    trained on several GPUs, or on one, if asked; only those whose inference is sharded, or not)."""
    families = set(families)
    return [
        name
        for name, entry in config["models"].items()
        if entry["family"] in families
        and (zero_shot is None or is_zero_shot(entry) == zero_shot)
        and (multi_gpu is None or (entry_gpus(entry) > 1) == multi_gpu)
        and (sharded is None or (n_shards(config, name) > 1) == sharded)
    ]


def caption_models(config: Config, sharded: bool) -> list[str]:
    """The models with a caption: sub-mapping whose captioning is (not) sharded."""
    return [n for n, e in config["models"].items() if "caption" in e and (n_shards(config, n) > 1) == sharded]


def pretrained_dirs(config: Config, entry: Mapping[str, Any]) -> list[str]:
    """The workflow-built checkpoint directories a model entry reads (hub ids are not files)."""
    refs = [v for v in entry.get("model", {}).values() if isinstance(v, str)]
    built = [f"{paths.RESULTS}/pretrained/{name}" for name in config.get("pretrained", {})]
    return sorted({d for d in built for p in refs if p == d or p.startswith(f"{d}/")})


def data_targets(config: Config) -> list[str]:
    """Every data-stage output of every configured dataset (derived views: only when an experiment asks)."""
    targets = []
    for dataset, d in config["datasets"].items():
        if "derived_from" in d:
            continue
        root = paths.data_dir(dataset)
        targets += [f"{root}/summary.json", f"{root}/leakage.json"]
        if d.get("task", "vqa") == "vqa":
            targets.append(paths.answers(dataset))
        targets += [paths.image_cache(config, dataset, split)["images"] for split in paths.SPLITS]
        targets += [paths.tokens(dataset, tok, split) for tok in d.get("tokenizers", []) for split in paths.SPLITS]
    return targets


def evaluate_targets(config: Config) -> list[str]:
    """Metrics of every run and split, their seed aggregates, and the McNemar tables."""
    targets, splits = [], report_splits(config)
    for dataset, model, seed in experiment_runs(config):
        targets += [paths.metrics(dataset, model, seed, split) for split in splits]
        targets += [paths.seed_summary(dataset, model, split) for split in splits]
    for dataset in experiment_datasets(config):
        for model, seed in baseline_runs(config, dataset):
            targets += [paths.metrics(dataset, model, seed, split) for split in splits]
        if dataset_task(config, dataset) == "vqa":
            targets += [f"{paths.RESULTS}/metrics/{dataset}/mcnemar.{split}.json" for split in splits]
    return list(dict.fromkeys(targets))


def run_figures(config: Config, dataset: str, model: str, seed: int, split: str) -> list[str]:
    """The per-run figures that apply to a run: reliability (VQA), gallery (captions), attention maps
    (families that draw them)."""
    root = f"{paths.RESULTS}/figures/{dataset}/{model}/{seed}"
    if dataset_task(config, dataset) == "caption":
        return [f"{root}/gallery.{split}.png"]
    figures = [f"{root}/reliability.{split}.png"]
    if FAMILIES[config["models"][model].get("family")].attention_maps:
        figures.append(f"{root}/attention.{split}.png")
    return figures


def figure_targets(config: Config) -> list[str]:
    """Every figure and table of the configured experiments (the `figures` target, without leakage)."""
    targets, published = [], config.get("report", {}).get("published", [])
    for dataset, model, seed in experiment_runs(config):
        if trains(config, model):
            targets.append(f"{paths.RESULTS}/figures/{dataset}/{model}/curves.png")
        for split in report_splits(config):
            targets += run_figures(config, dataset, model, seed, split)
    for dataset in experiment_datasets(config):
        for split in report_splits(config):
            targets += [
                f"{paths.RESULTS}/figures/{dataset}/comparison.{split}.png",
                f"{paths.RESULTS}/tables/{dataset}/results.{split}.csv",
            ]
            if dataset_task(config, dataset) == "vqa":
                targets.append(f"{paths.RESULTS}/tables/{dataset}/mcnemar.{split}.html")
            if any(e["dataset"] == dataset and e.get("split", "test") == split for e in published):
                targets.append(f"{paths.RESULTS}/tables/{dataset}/published.{split}.csv")
    return list(dict.fromkeys(targets))


def clean_pairs(config: Config) -> dict[str, str]:
    """{clean view: original view} of the configured experiments."""
    return clean_views(config, experiment_datasets(config))


def leakage_targets(config: Config) -> list[str]:
    """The leakage figure and table of every audited dataset behind an experiment, and the
    clean-vs-original table of every clean view."""
    targets = []
    for dataset in dict.fromkeys(paths.source_dataset(config, d) for d in experiment_datasets(config)):
        targets += [f"{paths.RESULTS}/figures/{dataset}/leakage.png", f"{paths.RESULTS}/tables/{dataset}/leakage.csv"]
    for clean in clean_pairs(config):
        targets.append(f"{paths.data_dir(clean)}/summary.json")  # states what the view removed
        targets += [f"{paths.RESULTS}/tables/{clean}/clean_vs_original.{split}.csv" for split in report_splits(config)]
    return targets


def caption_targets(config: Config) -> list[str]:
    """The generated captions of every captioning run on a caption dataset, for the report splits."""
    return [
        paths.captions(dataset, model, seed, split)
        for dataset, model, seed in experiment_runs(config)
        if dataset_task(config, dataset) == "caption" and "caption" in config["models"][model]
        for split in report_splits(config)
    ]
