"""Fake results trees for the report tests, in the real file formats of the earlier stages.

Predictions, histories, captions and attention maps are written here by hand (the model
stages are tested elsewhere); the baselines' files come from the real baseline stage and the
metrics JSONs from the real scoring stage.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import png_bytes, vqa_rows
from medvqa.data.baselines import BASELINES, write_baseline
from medvqa.data.images import build_image_cache
from medvqa.evaluate.score import score_captions, score_vqa
from medvqa.evaluate.spec import ScoreSpec

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
IMAGE_SIZE = 16


def write_vqa_split(path: Path) -> pd.DataFrame:
    """24 test questions on 8 images (half closed), as the data stage writes them."""
    rows = vqa_rows(n_images=8, questions_per_image=3, split="test", prefix="r")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path, index=False)
    return rows


def write_predictions(path: Path, data: pd.DataFrame, correct, seed: int) -> pd.DataFrame:
    """Predictions that are right exactly where ``correct`` (n,) is true, with a confidence column."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(correct, dtype=bool)
    frame = pd.DataFrame({
        "question_id": data["question_id"],
        "prediction": np.where(correct, data["answer"], "something else"),
        "confidence": rng.uniform(0.05, 1.0, len(data)),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return frame


def write_history(path: Path, best: int = 3, epochs: int = 5) -> pd.DataFrame:
    """history.csv whose validation accuracy peaks at epoch ``best``."""
    epoch = np.arange(1, epochs + 1)
    val_acc = 0.8 - 0.1 * np.abs(epoch - best)
    frame = pd.DataFrame({
        "epoch": epoch, "train_loss": 2.0 / epoch, "train_accuracy": 0.5 + 0.08 * epoch,
        "val_loss": 1.0 + 0.1 * np.abs(epoch - best), "val_accuracy": val_acc,
        "lr": 1e-3, "seconds": 1.5,
    }, columns=list(HISTORY_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def write_caption_data(data_path: Path, captions_path: Path) -> None:
    """6 test images (one with two reference captions) and a generated caption for each."""
    refs = [("c0", "a chest x-ray with a small nodule in the left lung"),
            ("c0", "left lung nodule on a chest radiograph"),
            ("c1", "axial ct of the abdomen showing the liver"),
            ("c2", "mri of the brain with a lesion"),
            ("c3", "ultrasound of the kidney"),
            ("c4", "chest x-ray without findings"),
            ("c5", "ct of the head showing a bleed")]
    data = pd.DataFrame({
        "image_id": [i for i, _ in refs], "image": [png_bytes((20 * k, 90, 160)) for k in range(len(refs))],
        "caption": [c for _, c in refs], "split": "test",
    })
    generated = pd.DataFrame({
        "image_id": [f"c{k}" for k in range(6)],
        "generated": ["a chest x-ray with a nodule", "ct of the liver", "brain mri", "kidney ultrasound",
                      "chest x-ray", "head ct"],
        "caption": ["ref"] * 6, "model": "capm", "seconds": 0.1,
    })
    for frame, path in ((data, data_path), (generated, captions_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)


def write_attention(pred_dir: Path, data: pd.DataFrame, image_root: Path, seed: int = 0) -> None:
    """{split}.attention.npy (n, 4, 4) softmax maps + ids, and the image cache they refer to."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(data), 4, 4))
    maps = np.exp(logits) / np.exp(logits).sum(axis=(1, 2), keepdims=True)
    np.save(pred_dir / "test.attention.npy", maps.astype(np.float32))
    (pred_dir / "test.attention.ids.json").write_text(json.dumps(list(data["question_id"])))
    image_ids = list(dict.fromkeys(data["image_id"]))
    cache = rng.integers(0, 256, size=(len(image_ids), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    np.save(f"{image_root}.test.npy", cache)
    Path(f"{image_root}.test.ids.json").write_text(json.dumps(image_ids))


def write_train_splits(res: Path) -> None:
    """Train splits of both datasets (the baselines learn from them) and the caption image caches."""
    train = vqa_rows(n_images=6, questions_per_image=3, split="train", prefix="r")
    train.to_parquet(res / "data/vqa/train.parquet", index=False)
    captions = ["chest x-ray without findings", "chest x-ray without findings", "ct of the head showing a bleed",
                "axial ct of the abdomen showing the liver"]
    cap_train = pd.DataFrame({
        "image_id": [f"t{k}" for k in range(len(captions))],
        "image": [png_bytes((60 * k, 200 - 40 * k, 30)) for k in range(len(captions))],
        "caption": captions, "split": "train",
    })
    cap_train.to_parquet(res / "data/cap/train.parquet", index=False)
    for split in ("train", "test"):
        root = res / f"data/cap/images_{IMAGE_SIZE}.{split}"
        build_image_cache(res / f"data/cap/{split}.parquet", IMAGE_SIZE, f"{root}.npy", f"{root}.ids.json")


def write_baselines(res: Path) -> None:
    """Every baseline's predictions / captions of the test split, as the baseline rules write them."""
    for task, dataset, stage in (("vqa", "vqa", "predictions"), ("caption", "cap", "captions")):
        data = res / f"data/{dataset}"
        caches = [(f"{data}/images_{IMAGE_SIZE}.{s}.npy", f"{data}/images_{IMAGE_SIZE}.{s}.ids.json")
                  for s in ("train", "test")]
        for name in BASELINES[task]:
            write_baseline(name, data / "train.parquet", data / "test.parquet",
                           res / f"{stage}/{dataset}/{name}/0/test.parquet", *caches)


def correct_vector(n: int, seed: int, p: float) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


def write_results_tree(root: Path) -> dict:
    """A results/ tree: VQA dataset 'vqa' (models cnn seeds 0, 1 and clip seed 0) and caption
    dataset 'cap' (model capm seed 0), with the predictions-stage outputs only."""
    res = root / "results"
    data = write_vqa_split(res / "data/vqa/test.parquet")
    vectors = {("cnn", 0): correct_vector(len(data), 1, 0.7), ("cnn", 1): correct_vector(len(data), 2, 0.6),
               ("clip", 0): correct_vector(len(data), 3, 0.4)}
    for (model, seed), correct in vectors.items():
        pred_dir = res / f"predictions/vqa/{model}/{seed}"
        write_predictions(pred_dir / "test.parquet", data, correct, seed)
        write_history(res / f"models/vqa/{model}/{seed}/history.csv", best=3 + seed)
        if model == "cnn":
            write_attention(pred_dir, data, res / f"data/vqa/images_{IMAGE_SIZE}", seed)
    write_caption_data(res / "data/cap/test.parquet", res / "captions/cap/capm/0/test.parquet")
    write_history(res / "models/cap/capm/0/history.csv", best=2)
    write_train_splits(res)
    return {"data": data, "vectors": vectors}


@pytest.fixture
def results_tree(tmp_path):
    """(root, info) of a fake results tree, plus scored metrics JSONs of every run."""
    info = write_results_tree(tmp_path)
    res, spec = tmp_path / "results", ScoreSpec()
    info["metrics"] = {}
    for model, seed in info["vectors"]:
        out = res / f"metrics/vqa/{model}/{seed}/test.json"
        info["metrics"][(model, seed)] = score_vqa(res / "data/vqa/test.parquet",
                                                   res / f"predictions/vqa/{model}/{seed}/test.parquet", out, spec)
    out = res / "metrics/cap/capm/0/test.json"
    # METEOR starts a JVM (seconds) for every fixture use; tests/evaluate covers it.
    caption_spec = ScoreSpec(meteor=False)
    info["metrics"][("capm", 0)] = score_captions(res / "data/cap/test.parquet",
                                                  res / "captions/cap/capm/0/test.parquet", out, caption_spec)
    write_baselines(res)
    for name in BASELINES["vqa"]:
        info["metrics"][(name, 0)] = score_vqa(res / "data/vqa/test.parquet", res / f"predictions/vqa/{name}/0/test.parquet",
                                               res / f"metrics/vqa/{name}/0/test.json", spec)
    for name in BASELINES["caption"]:
        info["metrics"][(name, 0)] = score_captions(res / "data/cap/test.parquet",
                                                    res / f"captions/cap/{name}/0/test.parquet",
                                                    res / f"metrics/cap/{name}/0/test.json", caption_spec)
    return tmp_path, info


@pytest.fixture(scope="session")
def fake_tree_writer():
    """The writer of a results tree without metrics (for the Snakemake test)."""
    return write_results_tree
