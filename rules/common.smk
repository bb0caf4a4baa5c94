# Input functions, params and wildcard vocabulary of every stage. No rule lives here. File names come
# from medvqa.paths (the path grammar), target lists and run selections from medvqa.targets, each
# job's inputs and params from medvqa.job_inputs (all unit-tested, none imports torch); what is
# left here adapts them to Snakemake's wildcards.

import os

from snakemake.exceptions import WorkflowError

from medvqa import job_inputs, paths, targets
from medvqa.data.baselines import BASELINES
from medvqa.families import FAMILIES, family_names

# The workflow's directory, relative to the working directory (a moved project keeps it): shell
# rules that run python -m medvqa (train_ddp) put it on PYTHONPATH, which conda jobs do not inherit.
CHECKOUT = os.path.relpath(workflow.basedir)
# A torch job given more than one thread (--set-threads) must not spin-wait for work: with the
# default policy a loaded machine ran 2-thread jobs 12-15x slower (issue 10), passive 1.1-1.3x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SEED_PATTERN = r"\d+"
CLASSIFIER_FAMILIES = family_names(generative=False)
GENERATIVE_FAMILIES = family_names(generative=True)
ZERO_SHOT_FAMILIES = family_names(zero_shot=True)  # an entry without train: runs as loaded
# Families whose trained runs also hold the model in a Hugging Face format (rules train_blip, train_vlm).
PLAIN_FAMILIES = family_names(export_dir=None)
# Scheduling on few cores (Snakemake starts ready jobs of higher priority first): the data stages
# (3; every model needs them), then every training whose inputs exist (2-3, in models: order), then
# the pretrained stand-ins (1), while the quick leaves (baselines, scores, figures) fill the gaps.
PRIORITY_DATA = 3
PRIORITY_TRAINING = 2
PRIORITY_PRETRAINED = 1


def training_priority(wildcards):
    """Between PRIORITY_TRAINING and PRIORITY_DATA: ready trainings start in the order of the models:
    section, so list the longest first (the demo's cnn_lstm_demo is its critical path)."""
    names = list(config["models"])
    return PRIORITY_TRAINING + (len(names) - names.index(wildcards.model)) / (len(names) + 1)


def image_cache_threads():
    """Threads of the image cache rules: 4, at most half of --cores locally (a job claiming every core waits
    for all to be free at once: the demo's cache waited ~80 s); 4 in a cluster job's own allocation."""
    if workflow.remote_exec or not workflow.local_exec:
        return 4
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores
        return 4
    return max(1, min(4, cores // 2))


IMAGE_CACHE_THREADS = image_cache_threads()


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    split="|".join(paths.SPLITS),
    tokenizer="|".join(config.get("tokenizers", {})) or "NONE",
    size=r"\d+",
    shard=r"\d+",


# --- wildcard constraints: regexes of config names ---


def regex(names):
    """Wildcard regex of exactly these names; one that never matches if there is none."""
    return "|".join(names) or "(?!x)x"


def task_datasets(task):
    return regex(d for d in config["datasets"] if targets.dataset_task(config, d) == task)


def model_names():
    """Every run name: the configured models and the baselines."""
    return regex([*config["models"], *BASELINES["vqa"], *BASELINES["caption"]])


def baseline_names(task):
    return regex(BASELINES[task])


def models_of(families, **selection):
    """The models of ``families`` (selection: zero_shot, multi_gpu, sharded; see targets.models_where)."""
    return regex(targets.models_where(config, families, **selection))


def classifier_models(attention):
    """The classifier models whose predictions have (no) attention maps."""
    return models_of(f for f in CLASSIFIER_FAMILIES if FAMILIES[f].attention_maps == attention)


def caption_models(sharded):
    return regex(targets.caption_models(config, sharded))


def audited_datasets():
    """The datasets with their own audit (not derived views)."""
    return regex(d for d, e in config["datasets"].items() if "derived_from" not in e)


def clean_view_names():
    return regex(targets.clean_pairs(config))


# --- input functions built from a path pattern ---


def source_files(pattern):
    """A file of the dataset's imported source (shared by derived views), from a pattern with {dataset}."""
    return lambda w: pattern.format(dataset=paths.source_dataset(config, w.dataset), split=w.get("split"))


def source_splits(key_prefix):
    """The imported source's split parquets, keyed by key_prefix + split."""
    return lambda w: {key_prefix + s: paths.source_split(config, w.dataset, s) for s in paths.SPLITS}


def split_files(pattern):
    """One path per split, keyed by split, from a pattern with {dataset}."""
    return lambda w: paths.splits_of(pattern, dataset=w.dataset)


def shard_files(pattern):
    """The shard outputs of one split, from a pattern with {shard}."""
    return lambda w: [pattern.format(**dict(w.items()), shard=k) for k in range(targets.n_shards(config, w.model))]


# --- params of one config entry, chosen by the wildcard that names it ---

WILDCARD_OF = {"datasets": "dataset", "models": "model", "pretrained": "name", "tokenizers": "tokenizer"}


def setting(table, key=None, default=None):
    """Params function: config[table][<the entry the wildcard names>][key] (the whole entry if key is None)."""

    def params(wildcards):
        e = config[table][getattr(wildcards, WILDCARD_OF[table])]
        return job_inputs.canonical(e if key is None else e.get(key, default))

    return params


leakage_params = setting("datasets", "leakage", {})
filter_params = setting("datasets", "filters", {})
image_size_param = setting("datasets", "image_size")
image_cache_param = setting("datasets", "image_cache", "raw")
tokenizer_params = setting("tokenizers")
pretrained_kind = setting("pretrained", "kind", "clip")
pretrained_model_params = setting("pretrained", "model", {})
pretrained_seed = setting("pretrained", "seed")
model_entry = setting("models")
generate_params = setting("models", "generate", {})  # decoding settings; empty for classifiers
predict_params = job_inputs.canonical(config.get("predict", {}))
figure_params = job_inputs.canonical(config.get("report", {}).get("figures", {}))


# --- medvqa.job_inputs functions, as Snakemake input / params functions ---


def per_job(fn):
    """Input / params function: fn(config, {wildcard: value}) (see medvqa.job_inputs)."""
    return lambda wildcards: fn(config, dict(wildcards.items()))


leakage_filter_input = per_job(job_inputs.leakage_filter_input)
tokenizer_inputs = per_job(job_inputs.tokenizer_inputs)
import_params = per_job(job_inputs.import_params)
image_cache_files = per_job(job_inputs.image_cache_files)
summary_cache_files = per_job(job_inputs.summary_cache_files)
baseline_image_inputs = per_job(job_inputs.baseline_image_inputs)
pretrained_train_splits = per_job(job_inputs.pretrained_train_splits)
pretrained_image_size = per_job(job_inputs.pretrained_image_size)
train_inputs = per_job(job_inputs.train_inputs)
train_gpus = per_job(job_inputs.train_gpus)
train_entry_json = per_job(job_inputs.train_entry_json)
train_inputs_json = per_job(job_inputs.train_inputs_json)
family_mem_mb = per_job(job_inputs.family_mem_mb)
predict_inputs = per_job(job_inputs.predict_inputs)
shard_param = per_job(job_inputs.shard_param)
caption_inputs = per_job(job_inputs.caption_inputs)
caption_params = per_job(job_inputs.caption_params)
score_run = per_job(job_inputs.score_run)
llava_med_candidates_input = per_job(job_inputs.llava_med_candidates_input)
score_params = per_job(job_inputs.score_params)
run_seeds = per_job(job_inputs.run_seeds)
seed_metrics = per_job(job_inputs.seed_metrics)
run_histories = per_job(job_inputs.run_histories)
dataset_runs = per_job(job_inputs.dataset_runs)
dataset_metrics = per_job(job_inputs.dataset_metrics)
dataset_predictions = per_job(job_inputs.dataset_predictions)
table_runs = per_job(job_inputs.table_runs)
table_metrics = per_job(job_inputs.table_metrics)
published_entries = per_job(job_inputs.published_entries)
clean_original = per_job(job_inputs.clean_original)
original_runs = per_job(job_inputs.original_runs)
original_metrics = per_job(job_inputs.original_metrics)
