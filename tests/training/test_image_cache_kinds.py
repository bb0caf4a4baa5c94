"""image_cache raw, png and none give the same training batches, runs and predictions."""

from __future__ import annotations

import pandas as pd
import torch
from training.vqa_fixture import cnn_lstm_config, split_paths, train_paths

from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.models.batch import VQASplit, classifier_collate, make_loader
from medvqa.models.generative import text_image_split
from medvqa.io import read_json
from medvqa.training.train import run_training

KINDS = ("raw", "png", "none")


def test_every_kind_gives_the_same_classifier_batches_and_text_image_examples(fixture_root):
    answers = read_json(fixture_root / "data" / "fx" / "answers.json")["answers"]
    batches = {}
    for kind in KINDS:
        split = VQASplit(split_paths(fixture_root, "train", "words", kind), answers)
        loader = make_loader(split, 16, classifier_collate(0), shuffle=True, seed=3)
        batches[kind] = list(loader)
        examples = text_image_split(split_paths(fixture_root, "val", None, kind))
        assert examples.image_size == split.image_size == 32
        assert torch.equal(examples[4]["image"], text_image_split(split_paths(fixture_root, "val", None))[4]["image"])
    for kind in ("png", "none"):
        assert len(batches[kind]) == len(batches["raw"]) == 5  # 72 questions in batches of 16
        for ours, raw in zip(batches[kind], batches["raw"]):
            assert all(torch.equal(a, b) for a, b in zip(ours, raw))


def test_a_tiny_model_trains_and_predicts_the_same_on_every_kind(fixture_root, tmp_path):
    outputs = {}
    for kind in KINDS:
        run = tmp_path / kind
        run_training(cnn_lstm_config(epochs=1), train_paths(fixture_root, "words", kind), run, seed=5)
        outputs[kind] = run_prediction(run, split_paths(fixture_root, "test", "words", kind),
                                       tmp_path / f"{kind}.parquet", PredictSpec(top_k=2))
        outputs[kind + " history"] = pd.read_csv(run / "history.csv").drop(columns="seconds")
    for kind in ("png", "none"):  # same losses and accuracies, same predictions and confidences
        pd.testing.assert_frame_equal(outputs[kind + " history"], outputs["raw history"])
        pd.testing.assert_frame_equal(outputs[kind], outputs["raw"])
