"""The ``results/`` path grammar, written once: the rules and every ``python -m medvqa...`` entry point
build their file names here (the Snakefile's header comment restates it for readers).

    results/data/{dataset}/source/{split}.parquet          validated source rows (a derived view: its base's)
    results/data/{dataset}/{split}.parquet                 unified rows after filters
    results/data/{dataset}/answers.json                    answer vocabulary + closed/open map
    results/data/{dataset}/images_{size}.{split}.npy       uint8 image cache (+ .ids.json); image_cache: raw
    results/data/{dataset}/images_{size}.{split}.png.arrow PNG image cache (ids inside); image_cache: png
                                                          (image_cache: none reads {split}.parquet itself)
    results/data/{dataset}/tokens/{tokenizer}.{split}.parquet  (+ {tokenizer}.vocab.json for word tokenizers)
    results/models/{dataset}/{model}/{seed}/               checkpoint dir + history.csv
    results/{predictions,captions}/{dataset}/{model}/{seed}/{split}.parquet
    results/metrics/{dataset}/{model}/{seed}/{split}.json  (+ {model}/{split}.seeds.json over the seeds)

Derived dataset views (``medvqa.config_files.expand_experiments``) share files of another view:
``derived_from`` names the view whose imported source they filter, ``images_from`` the one whose image
caches hold their images, ``models_from`` the one whose training runs score them. Functions that
take ``config`` follow those keys; the others build the literal path of the named view. Torch-free,
pandas-free: the workflow imports this at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESULTS = "results"
BEST_WEIGHTS = "best.safetensors"  # a run's best checkpoint (medvqa.models.checkpoint.WEIGHTS)
SPLITS = ("train", "val", "test")
# The filter values that derived dataset views differ in (and are named after: demo-closed, demo-clean).
QUESTION_TYPES = ("all", "closed", "open")  # filters.question_type: which questions to keep
LEAKAGE_FILTERS = ("keep", "drop")  # filters.leakage: keep or drop val/test rows on duplicated train images  # the {split} wildcard's values; medvqa.data.schema re-exports it


def source_dataset(config: Mapping[str, Any], dataset: str) -> str:
    """The dataset whose imported source files a (possibly derived) dataset view filters."""
    return config["datasets"][dataset].get("derived_from", dataset)


def image_dataset(config: Mapping[str, Any], dataset: str) -> str:
    """The dataset view whose image caches hold this view's images (see ``expand_experiments``)."""
    return config["datasets"][dataset].get("images_from", dataset)


def model_dataset(config: Mapping[str, Any], dataset: str) -> str:
    """The dataset view whose training runs score this view (a clean view: its twin's)."""
    return config["datasets"][dataset].get("models_from", dataset)


def data_dir(dataset: str, results: str = RESULTS) -> str:
    return f"{results}/data/{dataset}"


def source_split(config: Mapping[str, Any], dataset: str, split: str, results: str = RESULTS) -> str:
    """The imported (validated, unfiltered) split that the view's filtered split comes from."""
    return f"{data_dir(source_dataset(config, dataset), results)}/source/{split}.parquet"


def split_parquet(dataset: str, split: str, results: str = RESULTS) -> str:
    return f"{data_dir(dataset, results)}/{split}.parquet"


def answers(dataset: str, results: str = RESULTS) -> str:
    return f"{data_dir(dataset, results)}/answers.json"


def tokens(dataset: str, tokenizer: str, split: str, results: str = RESULTS) -> str:
    return f"{data_dir(dataset, results)}/tokens/{tokenizer}.{split}.parquet"


def vocab(dataset: str, tokenizer: str, results: str = RESULTS) -> str:
    """The word vocabulary of a tokenizer of kind ``words``."""
    return f"{data_dir(dataset, results)}/tokens/{tokenizer}.vocab.json"


CACHE_KINDS = ("raw", "png", "none")  # datasets.{name}.image_cache (medvqa.data.images)
PNG_CACHE_SUFFIX = ".png.arrow"


def image_cache_stem(dataset: str, size: int, split: str, results: str = RESULTS) -> str:
    """The cache's path without ``.npy`` / ``.ids.json`` / ``.png.arrow`` (of exactly this view)."""
    return f"{data_dir(dataset, results)}/images_{size}.{split}"


def cache_files(kind: str, stem: str, split_parquet_path: str) -> dict[str, str]:
    """{"images", "image_ids"} of a cache of ``kind`` at ``stem``: raw ``.npy`` + ``.ids.json``; png
    one ``.png.arrow`` (both keys); none the split parquet itself (both keys)."""
    if kind == "raw":
        return {"images": f"{stem}.npy", "image_ids": f"{stem}.ids.json"}
    if kind == "png":
        return {"images": f"{stem}{PNG_CACHE_SUFFIX}", "image_ids": f"{stem}{PNG_CACHE_SUFFIX}"}
    if kind == "none":
        return {"images": split_parquet_path, "image_ids": split_parquet_path}
    raise ValueError(f"image_cache={kind!r} is not one of {', '.join(CACHE_KINDS)}")


def cache_kind(images: Any) -> str:
    """The kind of an ``images`` path that ``cache_files`` built (the inverse of its naming)."""
    name = str(images)
    if name.endswith(".npy"):
        return "raw"
    if name.endswith(PNG_CACHE_SUFFIX):
        return "png"
    if name.endswith(".parquet"):
        return "none"
    raise ValueError(f"{name}: not an image cache (.npy, {PNG_CACHE_SUFFIX}) nor a split parquet")


def image_cache(config: Mapping[str, Any], dataset: str, split: str, results: str = RESULTS) -> dict[str, str]:
    """{"images", "image_ids"}: the files that hold a view's split images: the cache of ``images_from``
    (raw or png), or (image_cache: none) the view's own split parquet."""
    entry = config["datasets"][dataset]
    stem = image_cache_stem(image_dataset(config, dataset), entry["image_size"], split, results)
    return cache_files(entry.get("image_cache", "raw"), stem, split_parquet(dataset, split, results))


def split_inputs(
    config: Mapping[str, Any], dataset: str, split: str, tokenizer: str | None, results: str = RESULTS
) -> dict[str, str]:
    """One split's files, named as the train/predict rules name them: ``{split}``, ``{split}_images``,
    ``{split}_image_ids`` and, with a tokenizer, ``{split}_tokens`` (``SplitPaths.from_inputs``)."""
    cache = image_cache(config, dataset, split, results)
    inputs = {
        split: split_parquet(dataset, split, results),
        f"{split}_images": cache["images"],
        f"{split}_image_ids": cache["image_ids"],
    }
    if tokenizer:
        inputs[f"{split}_tokens"] = tokens(dataset, tokenizer, split, results)
    return inputs


def train_inputs(
    config: Mapping[str, Any], dataset: str, model: str, results: str = RESULTS, seed: int | str | None = None
) -> dict[str, str]:
    """The data files a model trains on: train + val splits, answers.json (VQA datasets), the word
    vocabulary (word tokenizers) and, for an entry with ``train.init_from``, that entry's best weights
    of the same view and ``seed`` (SFT then GRPO), named as ``TrainPaths.from_inputs`` reads them."""
    tokenizer = config["models"][model].get("tokenizer")
    inputs = {}
    if config["datasets"][dataset].get("task", "vqa") == "vqa":
        inputs["answers"] = answers(dataset, results)
    for split in ("train", "val"):
        inputs.update(split_inputs(config, dataset, split, tokenizer, results))
    if tokenizer and config["tokenizers"][tokenizer]["kind"] == "words":
        inputs["vocab"] = vocab(dataset, tokenizer, results)
    init_from = (config["models"][model].get("train") or {}).get("init_from")
    if init_from:
        inputs["init_from"] = best_weights(dataset, init_from, seed, results)
    return inputs


def run_dir(dataset: str, model: str, seed: int | str, results: str = RESULTS) -> str:
    """The training run directory of exactly this view (where the train rule writes)."""
    return f"{results}/models/{dataset}/{model}/{seed}"


def best_weights(dataset: str, model: str, seed: int | str, results: str = RESULTS) -> str:
    """The run's best checkpoint weights (``medvqa.models.checkpoint.WEIGHTS``)."""
    return f"{run_dir(dataset, model, seed, results)}/{BEST_WEIGHTS}"


def scoring_run_dir(config: Mapping[str, Any], dataset: str, model: str, seed: int | str, results: str = RESULTS):
    """The run whose checkpoint answers / captions a view's splits (``models_from``'s run)."""
    return run_dir(model_dataset(config, dataset), model, seed, results)


def predictions(dataset: str, model: str, seed: int | str, split: str, results: str = RESULTS) -> str:
    return f"{results}/predictions/{dataset}/{model}/{seed}/{split}.parquet"


def captions(dataset: str, model: str, seed: int | str, split: str, results: str = RESULTS) -> str:
    return f"{results}/captions/{dataset}/{model}/{seed}/{split}.parquet"


def metrics(dataset: str, model: str, seed: int | str, split: str, results: str = RESULTS) -> str:
    return f"{results}/metrics/{dataset}/{model}/{seed}/{split}.json"


def seed_summary(dataset: str, model: str, split: str, results: str = RESULTS) -> str:
    """The metrics of one model aggregated over its seeds."""
    return f"{results}/metrics/{dataset}/{model}/{split}.seeds.json"


def splits_of(pattern: str, **names: str) -> dict[str, str]:
    """{split: path} of every split, from a pattern with {split} (and the other names given)."""
    return {split: pattern.format(split=split, **names) for split in SPLITS}
