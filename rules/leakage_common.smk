# Input functions and targets of the leakage report rules (rules/leakage.smk). No rule lives
# here. Uses source_splits() (common.smk) and
# experiment_runs() / dataset_runs_of() / report_splits() / metrics_path() (report_common.smk).
#
# Config read here: experiments (their datasets), datasets.*.derived_from and filters.leakage.

from medvqa.workflow_config import clean_views, source_dataset


def experiment_datasets():
    return list(dict.fromkeys(d for d, _, _ in experiment_runs()))


def audited_datasets():
    """Wildcard regex of the datasets with their own audit (not derived views); never matches if none."""
    return "|".join(d for d, entry in config["datasets"].items() if "derived_from" not in entry) or "(?!x)x"


def clean_pairs():
    """{clean view: original view} of the configured experiments."""
    return clean_views(config, experiment_datasets())


def clean_view_names():
    return "|".join(clean_pairs()) or "(?!x)x"


def clean_original(wildcards):
    return clean_pairs()[wildcards.dataset]


def original_runs(wildcards):
    """Params of clean_table: [model, seed] of the original view, aligned with original_metrics."""
    return dataset_runs_of(clean_original(wildcards))


def original_metrics(wildcards):
    original = clean_original(wildcards)
    return [metrics_path(original, m, s, wildcards.split) for m, s in dataset_runs_of(original)]


def leakage_targets():
    """The leakage figure and table of every audited dataset behind an experiment, and the
    clean-vs-original table of every clean view."""
    targets = []
    for dataset in dict.fromkeys(source_dataset(config, d) for d in experiment_datasets()):
        targets += [f"results/figures/{dataset}/leakage.png", f"results/tables/{dataset}/leakage.csv"]
    for clean in clean_pairs():
        targets.append(f"results/data/{clean}/summary.json")  # states what the view removed
        targets += [f"results/tables/{clean}/clean_vs_original.{split}.csv" for split in report_splits()]
    return targets
