# Input functions and targets of the caption stage (rules/caption.smk). No rule lives here.
# Uses canonical() (common.smk), experiment_runs() / dataset_task() / report_splits() / trains() /
# image_cache() (report_common.smk) and model_pretrained_dirs() (model_common.smk).
#
# Config read here: models.{model}.caption (the CaptionSpec settings; an entry with this
# sub-mapping is a captioning model), models.{model}.family (blip | flamingo | vlm_sft → caption
# kind), models.{model}.model.checkpoint (the base checkpoint, if any); trains() tells
# whether the entry captions from its training run directory,
# datasets.{dataset}.image_size.

from medvqa.families import FAMILIES


def caption_models(sharded):
    """Wildcard regex of the models with a caption: sub-mapping whose captioning is (not) sharded."""
    # check_config has made sure that each is of a captioning family (FAMILIES[...].caption_kind).
    return name_regex(
        name for name, entry in config["models"].items() if "caption" in entry and (n_shards(name) > 1) == sharded
    )


def caption_inputs(wildcards):
    """The split, its image cache, the training run (fine-tuned), the built checkpoints."""
    entry = config["models"][wildcards.model]
    inputs = {
        "data": f"results/data/{wildcards.dataset}/{wildcards.split}.parquet",
        **image_cache(wildcards.dataset, wildcards.split),
    }
    if trains(wildcards.model):
        run = f"results/models/{model_dataset(config, wildcards.dataset)}/{wildcards.model}/{wildcards.seed}"
        inputs.update(state=f"{run}/state.json", weights=f"{run}/best.safetensors")
    if model_pretrained_dirs(entry):
        inputs["pretrained"] = model_pretrained_dirs(entry)
    return inputs


def caption_params(wildcards):
    """The CaptionSpec mapping: the entry's caption: settings plus its kind and base checkpoint."""
    entry = config["models"][wildcards.model]
    kind = FAMILIES[entry["family"]].caption_kind
    return canonical({**entry["caption"], "kind": kind, "checkpoint": entry["model"].get("checkpoint")})


def caption_targets():
    """The generated captions of every captioning run on a caption dataset, for the report splits."""
    return [
        f"results/captions/{dataset}/{model}/{seed}/{split}.parquet"
        for dataset, model, seed in experiment_runs()
        if dataset_task(dataset) == "caption" and "caption" in config["models"][model]
        for split in report_splits()
    ]
