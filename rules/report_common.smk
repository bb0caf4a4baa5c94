# Input functions and target lists of the evaluation and figure stages (rules/evaluate.smk,
# rules/figures.smk), and image_cache(), which the model and caption stages use too. No rule
# lives here. Uses canonical() and the dataset/split wildcard constraints of common.smk; the
# experiment helpers may move there once other stages need them.
#
# Config read here: experiments (datasets x models x seeds), datasets.*.task and image_size,
# models.*.family, evaluate (the ScoreSpec), report.splits, report.figures (the FigureSpec),
# report.published.


from medvqa.workflow_config import image_dataset, model_dataset

SEED_PATTERN = r"\d+"


def experiment_runs():
    """(dataset, model, seed) of every configured experiment, each once, in config order."""
    runs = {}
    for experiment in config["experiments"]:
        for dataset in experiment["datasets"]:
            for model in experiment["models"]:
                for seed in experiment.get("seeds", [0]):
                    runs[(dataset, model, int(seed))] = None
    return list(runs)


def dataset_task(dataset):
    return config["datasets"][dataset].get("task", "vqa")


def task_datasets(task):
    """Wildcard regex of the datasets of one task; one that never matches when there is none."""
    names = [d for d in config["datasets"] if dataset_task(d) == task]
    return "|".join(names) or "(?!x)x"


def model_names():
    return "|".join(config["models"]) or "(?!x)x"


def report_splits():
    """The splits that are scored, compared, plotted and tabulated."""
    return config.get("report", {}).get("splits", ["test"])


def dataset_runs_of(dataset):
    """[model, seed] of every run of a dataset, in config order."""
    return [[m, s] for d, m, s in experiment_runs() if d == dataset]


def model_seeds_of(dataset, model):
    return sorted(s for d, m, s in experiment_runs() if d == dataset and m == model)


def metrics_path(dataset, model, seed, split):
    return f"results/metrics/{dataset}/{model}/{seed}/{split}.json"


def score_params():
    return canonical(config.get("evaluate", {}))


def run_seeds(wildcards):
    """Params of aggregate_seeds: the seeds, in the order of seed_metrics."""
    return model_seeds_of(wildcards.dataset, wildcards.model)


def seed_metrics(wildcards):
    """Input of aggregate_seeds: one metrics JSON per seed of the model."""
    seeds = model_seeds_of(wildcards.dataset, wildcards.model)
    return [metrics_path(wildcards.dataset, wildcards.model, s, wildcards.split) for s in seeds]


def dataset_runs(wildcards):
    """Params of the per-dataset rules: [model, seed] pairs, in the order of their inputs."""
    return dataset_runs_of(wildcards.dataset)


def dataset_metrics(wildcards):
    """Every run's metrics JSON of the dataset split, aligned with dataset_runs."""
    return [metrics_path(wildcards.dataset, m, s, wildcards.split) for m, s in dataset_runs_of(wildcards.dataset)]


def dataset_predictions(wildcards):
    """Every run's predictions parquet of the dataset split, aligned with dataset_runs."""
    return [
        f"results/predictions/{wildcards.dataset}/{m}/{s}/{wildcards.split}.parquet"
        for m, s in dataset_runs_of(wildcards.dataset)
    ]


def evaluate_targets():
    """Metrics of every run and split, their seed aggregates, and the McNemar tables."""
    targets = []
    for dataset, model, seed in experiment_runs():
        targets += [metrics_path(dataset, model, seed, split) for split in report_splits()]
        targets += [f"results/metrics/{dataset}/{model}/{split}.seeds.json" for split in report_splits()]
    for dataset in dict.fromkeys(d for d, _, _ in experiment_runs()):
        if dataset_task(dataset) == "vqa":
            targets += [f"results/metrics/{dataset}/mcnemar.{split}.json" for split in report_splits()]
    return list(dict.fromkeys(targets))


def figure_params():
    return canonical(config.get("report", {}).get("figures", {}))


def published_config():
    return config.get("report", {}).get("published", [])


def run_histories(wildcards):
    """Every seed's history.csv of the model (an output of the training rule)."""
    seeds = model_seeds_of(wildcards.dataset, wildcards.model)
    return [f"results/models/{model_dataset(config, wildcards.dataset)}/{wildcards.model}/{s}/history.csv" for s in seeds]


def image_cache(dataset, split):
    """{"images", "image_ids"}: the cache of a split's images (a derived view may read its base's)."""
    size = config["datasets"][dataset]["image_size"]
    root = f"results/data/{image_dataset(config, dataset)}/images_{size}.{split}"
    return {"images": f"{root}.npy", "image_ids": f"{root}.ids.json"}


def image_cache_files(wildcards):
    """The cached images the model saw, and their ids."""
    return image_cache(wildcards.dataset, wildcards.split)


def published_entries(wildcards):
    """Params of published_table: the config's published numbers of this dataset."""
    return canonical([e for e in published_config() if e["dataset"] == wildcards.dataset])


def trains(model):
    """Whether runs of the model are trained (and so have training curves): entries with a
    train: block, unless model.finetune is false (zero-shot)."""
    entry = config["models"][model]
    return "train" in entry and entry.get("model", {}).get("finetune", True) is not False


def model_family(model):
    return config["models"][model].get("family")


def run_figures(dataset, model, seed, split):
    """The per-run figures that apply to a run: reliability (VQA), gallery (captions), attention (cnn_lstm)."""
    root = f"results/figures/{dataset}/{model}/{seed}"
    if dataset_task(dataset) == "caption":
        return [f"{root}/gallery.{split}.png"]
    figures = [f"{root}/reliability.{split}.png"]
    if model_family(model) == "cnn_lstm":
        figures.append(f"{root}/attention.{split}.png")
    return figures


def figure_targets():
    """Every figure and table of the configured experiments (the `figures` target)."""
    targets = []
    for dataset, model, seed in experiment_runs():
        if trains(model):
            targets.append(f"results/figures/{dataset}/{model}/curves.png")
        for split in report_splits():
            targets += run_figures(dataset, model, seed, split)
    for dataset in dict.fromkeys(d for d, _, _ in experiment_runs()):
        for split in report_splits():
            targets += [
                f"results/figures/{dataset}/comparison.{split}.png",
                f"results/tables/{dataset}/results.{split}.csv",
            ]
            if any(e["dataset"] == dataset and e.get("split", "test") == split for e in published_config()):
                targets.append(f"results/tables/{dataset}/published.{split}.csv")
    return list(dict.fromkeys(targets))
