"""Wall time and test accuracy of demo training, for both classifier families, on the CPU.

Builds the demo dataset with the data stages' own functions (import, image cache, answers,
tokens) and a tiny CLIP, then for each model: trains (timed), predicts the test split and
compares its accuracy with the question-only baseline (each question answered with its most
frequent train answer). Prints a table and writes ``bench.json`` into ``--out``.

    python bench/bench_demo_training.py --out /tmp/medvqa-bench --threads 2
    python bench/bench_demo_training.py --config config.yaml --models cnn_lstm_demo clip_demo

Without ``--config`` the model entries below (the ones proposed for config.yaml) are used.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from medvqa.data.answers import normalise_answer, write_answers  # noqa: E402
from medvqa.data.baselines import question_only_baseline  # noqa: E402
from medvqa.data.images import build_image_cache  # noqa: E402
from medvqa.data.prepare import ImportSpec, import_dataset  # noqa: E402
from medvqa.data.schema import SPLITS, read_text_columns  # noqa: E402
from medvqa.data.tokens import TokenizerSpec, build_word_vocab, tokenize_split  # noqa: E402
from medvqa.demo.dataset import load_demo  # noqa: E402
from medvqa.demo.tiny_checkpoints import write_tiny_checkpoint  # noqa: E402
from medvqa.inference.predict import PredictSpec, run_prediction  # noqa: E402
from medvqa.io import setup_logging  # noqa: E402
from medvqa.models.batch import SplitPaths  # noqa: E402
from medvqa.training.train import ModelConfig, paths_from_config, run_training  # noqa: E402

DATASET = "demo"
DEMO_CONFIG = {
    "datasets": {DATASET: {"image_size": 64, "options": {"seed": 0, "n_images": 300, "image_px": 128}}},
    "tokenizers": {
        "words": {"kind": "words", "max_length": 24},
        "clip-tiny": {"kind": "hf", "path": "results/pretrained/clip-tiny", "max_length": 32},
    },
    "models": {
        "cnn_lstm_demo": {
            "family": "cnn_lstm",
            "tokenizer": "words",
            "model": {"backbone": "resnet18", "pretrained": False, "stages": 3, "embed_dim": 64,
                      "hidden_dim": 64, "attention_dim": 128, "classifier_dim": 256, "dropout": 0.3},
            "train": {"epochs": 20, "batch_size": 32, "lr": 2e-3, "backbone_lr": 2e-3, "weight_decay": 0.01,
                      "warmup": 0.05, "patience": 6, "augment": {"flip": False}},
        },
        "clip_demo": {
            "family": "clip_classifier",
            "tokenizer": "clip-tiny",
            "model": {"checkpoint": "results/pretrained/clip-tiny", "unfreeze_last": 2, "hidden_dim": 256,
                      "dropout": 0.1},
            "train": {"epochs": 30, "batch_size": 32, "lr": 2e-3, "backbone_lr": 1e-3, "weight_decay": 0.01,
                      "warmup": 0.05, "patience": 8, "augment": {"flip": False}},
        },
    },
}


def prepare_demo(results: Path, config: dict) -> None:
    """results/data/demo/* and results/pretrained/clip-tiny, as the workflow's data stages write them."""
    data = results / "data" / DATASET
    dataset = config["datasets"][DATASET]
    size = dataset["image_size"]
    splits = {split: data / f"{split}.parquet" for split in SPLITS}
    import_dataset(ImportSpec(source="demo", options=dataset["options"]), DATASET, splits,
                   data / "rejected.csv", data / "meta.json", loaders={"demo": load_demo})
    for split, path in splits.items():
        cache = data / f"images_{size}.{split}"
        build_image_cache(path, size, f"{cache}.npy", f"{cache}.ids.json")
    write_answers(splits["train"], [splits["val"], splits["test"]], data / "answers.json")
    clip_dir = results / "pretrained" / "clip-tiny"
    write_tiny_checkpoint("clip", splits["train"], clip_dir, image_size=size, seed=0)
    for name, entry in config["tokenizers"].items():
        words = entry["kind"] == "words"
        spec = TokenizerSpec.from_mapping(entry if words else {**entry, "path": str(clip_dir)})
        vocab = data / "tokens" / f"{name}.vocab.json" if words else None
        if words:
            build_word_vocab(splits["train"], spec, vocab)
        for split, path in splits.items():
            tokenize_split(spec, path, data / "tokens" / f"{name}.{split}.parquet", vocab)


def with_paths_under(entry: dict, results: Path) -> dict:
    """A model entry whose ``results/...`` checkpoint path points into ``results``."""
    model = dict(entry.get("model", {}))
    if str(model.get("checkpoint", "")).startswith("results/"):
        model["checkpoint"] = str(results / model["checkpoint"].removeprefix("results/"))
    return {**entry, "model": model}


def bench_model(results: Path, config: dict, name: str, threads: int, overrides: dict) -> dict:
    entry = with_paths_under(config["models"][name], results)
    entry = {**entry, "train": {**entry.get("train", {}), **overrides}}
    run_dir = results / "models" / DATASET / name / "0"
    start = time.perf_counter()
    paths = paths_from_config(config, DATASET, name, results)
    state = run_training(ModelConfig.from_mapping(entry, name), paths, run_dir, seed=0, threads=threads)
    seconds = time.perf_counter() - start
    size = config["datasets"][DATASET]["image_size"]
    test = SplitPaths.from_grammar(results, DATASET, "test", size, entry["tokenizer"])
    predictions = run_prediction(run_dir, test, results / "predictions" / f"{name}.parquet", PredictSpec())
    truth = read_text_columns(test.parquet)[["question_id", "answer", "answer_type"]]
    scored = truth.merge(predictions, on="question_id")
    correct = scored["answer"].map(normalise_answer) == scored["prediction"]
    return {
        "model": name, "train_seconds": round(seconds, 1),
        "epochs": state["epoch"], "best_epoch": state["best_epoch"],
        "val_accuracy": round(state["best_val_accuracy"], 4),
        "test_accuracy": round(float(correct.mean()), 4),
        "test_closed": round(float(correct[scored["answer_type"] == "closed"].mean()), 4),
        "test_open": round(float(correct[scored["answer_type"] == "open"].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/medvqa-bench", help="scratch results directory")
    parser.add_argument("--config", help="config.yaml with the model entries (default: the built-in ones)")
    parser.add_argument("--models", nargs="+", default=["cnn_lstm_demo", "clip_demo"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", help="override train.device (cpu, cuda)")
    parser.add_argument("--precision", help="override train.precision (fp32, bf16, fp16)")
    parser.add_argument("--reuse-data", action="store_true", help="skip building the demo data if present")
    args = parser.parse_args()
    setup_logging()
    config = yaml.safe_load(Path(args.config).read_text()) if args.config else DEMO_CONFIG
    results = Path(args.out)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if not (args.reuse_data and (results / "data" / DATASET / "answers.json").exists()):
        prepare_demo(results, config)
    data_seconds = time.perf_counter() - start
    train, test = (read_text_columns(results / "data" / DATASET / f"{s}.parquet") for s in ("train", "test"))
    baseline = question_only_baseline(train, test)["overall"]
    overrides = {k: v for k, v in (("device", args.device), ("precision", args.precision)) if v}
    rows = [bench_model(results, config, name, args.threads, overrides) for name in args.models]
    for row in rows:
        row["beats_question_only_by"] = round(row["test_accuracy"] - baseline, 4)
    report = {"threads": args.threads, **overrides, "data_seconds": round(data_seconds, 1),
              "question_only_test_accuracy": round(baseline, 4), "models": rows}
    (results / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"question-only baseline (test): {baseline:.4f}; demo data built in {data_seconds:.1f} s")


if __name__ == "__main__":
    main()
