"""Predictions parquet from a run directory, and the command-line entry points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml
from training.vqa_fixture import SIZE, clip_config, cnn_lstm_config, split_paths, train_paths

from medvqa.inference import predict as predict_cli
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.io import read_json
from medvqa.training import train as train_cli
from medvqa.training.train import run_training


COLUMNS = ["question_id", "prediction", "confidence", "topk_answers", "topk_probs"]


def test_predictions_cover_the_split_and_repeat_with_the_seed(fixture_root, tmp_path):
    test_rows = pd.read_parquet(fixture_root / "data" / "fx" / "test.parquet", columns=["question_id"])
    outputs = []
    for run in ("a", "b"):
        run_training(cnn_lstm_config(epochs=2), train_paths(fixture_root, "words"), tmp_path / run, seed=5)
        attention = (tmp_path / f"{run}.attention.npy", tmp_path / f"{run}.attention.ids.json")
        outputs.append(run_prediction(tmp_path / run, split_paths(fixture_root, "test", "words"),
                                      tmp_path / f"{run}.parquet", PredictSpec(top_k=3), attention))
    predictions = pd.read_parquet(tmp_path / "a.parquet")
    assert list(predictions.columns) == COLUMNS
    assert list(predictions["question_id"]) == list(test_rows["question_id"])
    assert predictions["confidence"].between(0, 1).all()
    assert (predictions["prediction"] == predictions["topk_answers"].str[0]).all()
    assert all(len(p) == 3 and list(p) == sorted(p, reverse=True) for p in predictions["topk_probs"])
    assert (predictions["confidence"] == predictions["topk_probs"].str[0]).all()
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    maps = np.load(tmp_path / "a.attention.npy")
    assert maps.shape == (len(test_rows), 4, 4) and np.allclose(maps.sum(axis=(1, 2)), 1, atol=1e-5)
    assert read_json(tmp_path / "a.attention.ids.json") == list(test_rows["question_id"])
    assert np.array_equal(maps, np.load(tmp_path / "b.attention.npy"))


def test_command_line_train_and_predict_follow_the_path_grammar(fixture_root, tmp_path):
    results = tmp_path / "results"
    (results / "data").mkdir(parents=True)
    (results / "data" / "fx").symlink_to(fixture_root / "data" / "fx")
    config = {
        "datasets": {"fx": {"source": "local", "options": {"path": "unused.csv"}, "image_size": SIZE}},
        "tokenizers": {"clip": {"kind": "hf", "path": str(fixture_root / "pretrained" / "clip")}},
        "models": {"clip_tiny": {**clip_config(fixture_root, epochs=1).to_dict()}},
        "predict": {"batch_size": 4, "top_k": 2},
        "experiments": [{"datasets": ["fx"], "models": ["clip_tiny"]}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    common = ["--config", str(tmp_path / "config.yaml"), "--dataset", "fx", "--model", "clip_tiny",
              "--seed", "1", "--results", str(results)]
    train_cli.main(common + ["--device", "cpu"])
    assert (results / "models" / "fx" / "clip_tiny" / "1" / "best.safetensors").exists()
    predict_cli.main(common + ["--split", "val"])
    predictions = pd.read_parquet(results / "predictions" / "fx" / "clip_tiny" / "1" / "val.parquet")
    assert len(predictions) == 18 and predictions["topk_answers"].str.len().eq(2).all()
