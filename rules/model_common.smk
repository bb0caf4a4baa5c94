# Input functions and constants of the model stages (rules/pretrained.smk, train.smk,
# infer.smk). No rule lives here.

# --- pretrained.smk ---

def pretrained_entry(wildcards):
    return config["pretrained"][wildcards.name]


def pretrained_train_split(wildcards):
    """The train split whose questions the tiny tokenizer learns."""
    return f"results/data/{pretrained_entry(wildcards)['dataset']}/train.parquet"


def pretrained_model_params(wildcards):
    return canonical(pretrained_entry(wildcards).get("model", {}))


def pretrained_seed(wildcards):
    return pretrained_entry(wildcards)["seed"]


def pretrained_image_size(wildcards):
    """Checkpoint images are as large as the dataset's image cache, so no resizing happens."""
    return config["datasets"][pretrained_entry(wildcards)["dataset"]]["image_size"]


# --- train.smk ---

CLASSIFIER_FAMILIES = ("cnn_lstm", "clip_classifier")
ATTENTION_FAMILIES = ("cnn_lstm",)


def models_of(families):
    """Wildcard regex of the configured models of ``families``; one that never matches if none."""
    names = [name for name, entry in config["models"].items() if entry["family"] in families]
    return "|".join(names) or "(?!x)x"


def classifier_models(attention):
    """Wildcard regex of the configured classifier models whose predictions have (no) attention maps."""
    return models_of([f for f in CLASSIFIER_FAMILIES if (f in ATTENTION_FAMILIES) == attention])


def model_entry(wildcards):
    return canonical(config["models"][wildcards.model])


def model_pretrained_dir(entry):
    """The workflow-built checkpoint directory a model starts from, if any (hub ids are not files)."""
    # (not named `checkpoint`: a Snakemake keyword)
    start = entry.get("model", {}).get("checkpoint")
    built = {f"results/pretrained/{name}" for name in config.get("pretrained", {})}
    return start if start in built else None


def split_inputs(dataset, split, tokenizer):
    """Named inputs of one split, as medvqa.training.data.SplitPaths.from_inputs reads them."""
    root = f"results/data/{dataset}"
    size = config["datasets"][dataset]["image_size"]
    return {
        split: f"{root}/{split}.parquet",
        f"{split}_images": f"{root}/images_{size}.{split}.npy",
        f"{split}_image_ids": f"{root}/images_{size}.{split}.ids.json",
        f"{split}_tokens": f"{root}/tokens/{tokenizer}.{split}.parquet",
    }


def train_inputs(wildcards):
    """train + val splits, answers.json, the word vocabulary or the pretrained checkpoint."""
    entry = config["models"][wildcards.model]
    tokenizer = entry["tokenizer"]
    root = f"results/data/{wildcards.dataset}"
    inputs = {"answers": f"{root}/answers.json"}
    for split in ("train", "val"):
        inputs.update(split_inputs(wildcards.dataset, split, tokenizer))
    if config["tokenizers"][tokenizer]["kind"] == "words":
        inputs["vocab"] = f"{root}/tokens/{tokenizer}.vocab.json"
    if model_pretrained_dir(entry):
        inputs["checkpoint"] = model_pretrained_dir(entry)
    return inputs


# --- infer.smk ---

def predict_inputs(wildcards):
    """The run's best checkpoint and the split's parquet, image cache and tokens."""
    run = f"results/models/{wildcards.dataset}/{wildcards.model}/{wildcards.seed}"
    tokenizer = config["models"][wildcards.model]["tokenizer"]
    return {
        "weights": f"{run}/best.safetensors",
        "state": f"{run}/state.json",
        **split_inputs(wildcards.dataset, wildcards.split, tokenizer),
    }


def predict_params(wildcards):
    return canonical(config.get("predict", {}))
