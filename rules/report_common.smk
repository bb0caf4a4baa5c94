# Input functions and target lists of the baseline, evaluation and figure stages
# (rules/baselines.smk, rules/evaluate.smk, rules/figures.smk), and image_cache(), which the model
# and caption stages use too. No rule lives here. Uses canonical() and the dataset/split wildcard constraints of common.smk; the
# experiment helpers may move there once other stages need them.
#
# Config read here: experiments (datasets x models x seeds), datasets.*.task and image_size,
# models.*.family, evaluate (the ScoreSpec), report.splits, report.figures (the FigureSpec),
# report.published.


from medvqa.data.baselines import BASELINE_RULES, BASELINE_SEED, BASELINES
from medvqa.families import FAMILIES
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
    """Wildcard regex of every run name: the configured models and the baselines."""
    return "|".join([*config["models"], *BASELINES["vqa"], *BASELINES["caption"]])


def baseline_names(task):
    return "|".join(BASELINES[task])


def baseline_runs_of(dataset):
    """[baseline, seed] of the dataset's baselines (one deterministic run each)."""
    return [[name, BASELINE_SEED] for name in BASELINES[dataset_task(dataset)]]


def baseline_image_inputs(wildcards):
    """The train and the scored split's image caches (nearest-neighbour caption baseline)."""
    train = image_cache(wildcards.dataset, "train")
    split = image_cache(wildcards.dataset, wildcards.split)
    return {"train_images": train["images"], "train_image_ids": train["image_ids"], **split}


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


def score_run(wildcards):
    """Params of the scoring rules: the model behind the predictions (its config entry and run
    directory), recorded in the metrics JSON's provenance (medvqa.provenance.model_provenance)."""
    run_dir = f"results/models/{wildcards.dataset}/{wildcards.model}/{wildcards.seed}"
    if wildcards.model in BASELINE_RULES:  # a baseline is no configured model: its rule identifies it
        entry = {"family": "baseline", "rule": BASELINE_RULES[wildcards.model]}
    else:
        entry = config["models"][wildcards.model]
    return canonical({"model": wildcards.model, "seed": int(wildcards.seed), "run_dir": run_dir, "entry": entry})


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


def table_runs(wildcards):
    """Params of the results table and comparison figure: the model runs, then the baselines."""
    return dataset_runs_of(wildcards.dataset) + baseline_runs_of(wildcards.dataset)


def table_metrics(wildcards):
    """Metrics JSONs aligned with table_runs."""
    return [metrics_path(wildcards.dataset, m, s, wildcards.split) for m, s in table_runs(wildcards)]


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
        for model, seed in baseline_runs_of(dataset):
            targets += [metrics_path(dataset, model, seed, split) for split in report_splits()]
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
    return [
        f"results/models/{model_dataset(config, wildcards.dataset)}/{wildcards.model}/{s}/history.csv" for s in seeds
    ]


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
    """The per-run figures that apply to a run: reliability (VQA), gallery (captions), attention maps
    (families that draw them)."""
    root = f"results/figures/{dataset}/{model}/{seed}"
    if dataset_task(dataset) == "caption":
        return [f"{root}/gallery.{split}.png"]
    figures = [f"{root}/reliability.{split}.png"]
    if FAMILIES[model_family(model)].attention_maps:
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
            if dataset_task(dataset) == "vqa":
                targets.append(f"results/tables/{dataset}/mcnemar.{split}.html")
            if any(e["dataset"] == dataset and e.get("split", "test") == split for e in published_config()):
                targets.append(f"results/tables/{dataset}/published.{split}.csv")
    return list(dict.fromkeys(targets))
