# Input functions and constants of the model stages (rules/pretrained.smk, train.smk,
# infer.smk). No rule lives here. Uses canonical() (common.smk) and dataset_task() /
# image_cache() (report_common.smk).

from medvqa.families import FAMILIES, family_names

# --- pretrained.smk ---


def pretrained_entry(wildcards):
    return config["pretrained"][wildcards.name]


def pretrained_train_splits(wildcards):
    """The train splits whose texts the tiny tokenizer learns (text_from, default [dataset])."""
    entry = pretrained_entry(wildcards)
    return [f"results/data/{name}/train.parquet" for name in entry.get("text_from", [entry["dataset"]])]


def pretrained_kind(wildcards):
    return pretrained_entry(wildcards).get("kind", "clip")


def pretrained_model_params(wildcards):
    return canonical(pretrained_entry(wildcards).get("model", {}))


def pretrained_seed(wildcards):
    return pretrained_entry(wildcards)["seed"]


def pretrained_image_size(wildcards):
    """Checkpoint images are as large as the dataset's image cache, so no resizing happens."""
    return config["datasets"][pretrained_entry(wildcards)["dataset"]]["image_size"]


# --- train.smk ---

CLASSIFIER_FAMILIES = family_names(generative=False)
GENERATIVE_FAMILIES = family_names(generative=True)
ATTENTION_FAMILIES = family_names(attention_maps=True)
# Families whose trained runs also hold the model in a Hugging Face format (rule train_{family}).
PLAIN_FAMILIES = family_names(export_dir=None)


def is_zero_shot(entry):
    """An entry with model.finetune: false is used as pretrained (vlm_sft zero-shot baselines)."""
    return entry.get("model", {}).get("finetune", True) is False


def name_regex(names):
    """Wildcard regex of exactly these model names; one that never matches if there is none."""
    return "|".join(names) or "(?!x)x"


def entry_gpus(entry):
    """GPUs of a training job: train.gpus (more than one: the train_ddp job, under torchrun)."""
    return int(entry.get("train", {}).get("gpus", 1))


def n_shards(model):
    """Parallel jobs per split of a model's answers or captions (models.{model}.shards)."""
    return int(config["models"][model].get("shards", 1))


def models_of(families, zero_shot=None, multi_gpu=None, sharded=None):
    """Wildcard regex of the configured models of ``families`` (only zero-shot ones, or none, if
    asked; only those trained on several GPUs, or on one, if asked; only those whose inference
    is sharded, or not, if asked)."""
    return name_regex(
        name
        for name, entry in config["models"].items()
        if entry["family"] in families
        and (zero_shot is None or is_zero_shot(entry) == zero_shot)
        and (multi_gpu is None or (entry_gpus(entry) > 1) == multi_gpu)
        and (sharded is None or (n_shards(name) > 1) == sharded)
    )


def shard_files(pattern):
    """Input function: the shard outputs of one split, from a pattern with {shard}."""

    def files(wildcards):
        return [pattern.format(**dict(wildcards.items()), shard=k) for k in range(n_shards(wildcards.model))]

    return files


def shard_param(wildcards):
    """(k, n) of a shard job."""
    return [int(wildcards.shard), n_shards(wildcards.model)]


def classifier_models(attention):
    """Wildcard regex of the configured classifier models whose predictions have (no) attention maps."""
    return models_of([f for f in CLASSIFIER_FAMILIES if (f in ATTENTION_FAMILIES) == attention])


def model_entry(wildcards):
    return canonical(config["models"][wildcards.model])


def model_pretrained_dirs(entry):
    """The workflow-built checkpoint directories a model reads (hub ids are not files)."""
    paths = [v for v in entry.get("model", {}).values() if isinstance(v, str)]
    built = [f"results/pretrained/{name}" for name in config.get("pretrained", {})]
    return sorted({d for d in built for p in paths if p == d or p.startswith(f"{d}/")})


def split_inputs(dataset, split, tokenizer):
    """Named inputs of one split, as medvqa.models.batch.SplitPaths.from_inputs reads them
    (pre-tokenised questions only for the families that read them)."""
    root = f"results/data/{dataset}"
    cache = image_cache(dataset, split)
    inputs = {
        split: f"{root}/{split}.parquet",
        f"{split}_images": cache["images"],
        f"{split}_image_ids": cache["image_ids"],
    }
    if tokenizer:
        inputs[f"{split}_tokens"] = f"{root}/tokens/{tokenizer}.{split}.parquet"
    return inputs


def train_inputs(wildcards):
    """train + val splits, answers.json (VQA datasets), the word vocabulary, the pretrained checkpoints,
    and the weights of the run that train.init_from names (same dataset and seed: SFT then GRPO)."""
    entry = config["models"][wildcards.model]
    tokenizer = entry.get("tokenizer")
    root = f"results/data/{wildcards.dataset}"
    inputs = {"answers": f"{root}/answers.json"} if dataset_task(wildcards.dataset) == "vqa" else {}
    for split in ("train", "val"):
        inputs.update(split_inputs(wildcards.dataset, split, tokenizer))
    if tokenizer and config["tokenizers"][tokenizer]["kind"] == "words":
        inputs["vocab"] = f"{root}/tokens/{tokenizer}.vocab.json"
    if model_pretrained_dirs(entry):
        inputs["pretrained"] = model_pretrained_dirs(entry)
    init_from = entry.get("train", {}).get("init_from")
    if init_from:
        inputs["init_from"] = f"results/models/{wildcards.dataset}/{init_from}/{wildcards.seed}/best.safetensors"
    return inputs


def train_gpus(wildcards):
    return entry_gpus(config["models"][wildcards.model])


def train_entry_json(wildcards):
    """The model entry for python -m medvqa.training.train --entry (shell-quoted with :q where used)."""
    return json.dumps(canonical(config["models"][wildcards.model]))


def train_inputs_json(wildcards):
    """The named inputs (train_inputs) for python -m medvqa.training.train --inputs (TrainPaths.from_inputs)."""
    return json.dumps({name: path for name, path in train_inputs(wildcards).items() if name != "pretrained"})


def family_mem_mb(wildcards):
    return FAMILIES[config["models"][wildcards.model]["family"]].mem_mb


# --- infer.smk ---


def predict_inputs(wildcards):
    """The run (state.json, + best weights unless zero-shot), the split's parquet, image cache
    (and tokens), and the pretrained checkpoints the model is rebuilt from."""
    entry = config["models"][wildcards.model]
    run = f"results/models/{model_dataset(config, wildcards.dataset)}/{wildcards.model}/{wildcards.seed}"
    inputs = {"state": f"{run}/state.json", **split_inputs(wildcards.dataset, wildcards.split, entry.get("tokenizer"))}
    if not is_zero_shot(entry):
        inputs["weights"] = f"{run}/best.safetensors"
    if model_pretrained_dirs(entry):
        inputs["pretrained"] = model_pretrained_dirs(entry)
    return inputs


def predict_params(wildcards):
    return canonical(config.get("predict", {}))


def generate_params(wildcards):
    """A generative model's decoding settings (its entry's generate:); empty for classifiers."""
    return canonical(config["models"][wildcards.model].get("generate", {}))
