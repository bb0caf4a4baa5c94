"""A generative family (flamingo) through the shared engine: LM loss falls, the validation loss
selects, only the new layers are saved, a killed run resumes, predictions are generated."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from training.vqa_fixture import KilledInEpochTwo, SIZE, split_paths, split_rows

from medvqa.demo.tiny_hf import write_tiny_clip_gpt2
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.io import read_json
from medvqa.models.checkpoint import load_checkpoint
from medvqa.models.registry import build_model
from medvqa.seed import seed_everything
from medvqa.training.engine import LOSS_COLUMNS, TrainSpec, train
from medvqa.training.train import ModelConfig, TrainPaths, load_data, run_training

GENERATION_COLUMNS = ["question_id", "prediction", "confidence", "answer_prob", "answer_prob_mean", "samples"]


@pytest.fixture(scope="module")
def clip_gpt2(tmp_path_factory):
    rows = split_rows("train", 6, 0)
    texts = [*rows["question"], *rows["answer"]] * 5
    return write_tiny_clip_gpt2(tmp_path_factory.mktemp("clip_gpt2"), texts, seed=0, image_size=SIZE)


def flamingo_config(clip_gpt2, **train) -> ModelConfig:
    model = {"vision": str(clip_gpt2["vision"]), "lm": str(clip_gpt2["lm"]), "num_latents": 4, "heads": 2,
             "resampler_depth": 1, "max_answer_tokens": 4}
    spec = {"epochs": 3, "batch_size": 16, "lr": 1e-2, "warmup": 0.1, "weight_decay": 0.0, "device": "cpu"}
    return ModelConfig.from_mapping({"family": "flamingo", "model": model, "train": {**spec, **train},
                                     "generate": {"batch_size": 8, "max_new_tokens": 3}})


def text_paths(root) -> TrainPaths:
    """The fixture's splits without pre-tokenised questions: generative families read the text."""
    return TrainPaths(split_paths(root, "train", None), split_paths(root, "val", None),
                      root / "data" / "fx" / "answers.json")


def test_generative_training_lowers_the_validation_loss_and_saves_only_new_layers(fixture_root, clip_gpt2, tmp_path):
    config = flamingo_config(clip_gpt2)
    state = run_training(config, text_paths(fixture_root), tmp_path, seed=0)

    history = pd.read_csv(tmp_path / "history.csv")
    assert tuple(history.columns) == LOSS_COLUMNS and list(history["epoch"]) == [1, 2, 3]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert state["monitor"] == "val_loss"
    assert state["best_val_loss"] == history["val_loss"].min()
    assert state["best_epoch"] == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    with safe_open(tmp_path / "best.safetensors", "pt") as f:
        saved = set(f.keys())
    assert saved and all(k.startswith(("resampler.", "layers.")) and ".block." not in k for k in saved)
    rebuilt, _ = load_checkpoint(tmp_path)  # frozen CLIP + GPT-2 come back from their checkpoints
    assert {n for n, p in rebuilt.module.named_parameters() if p.requires_grad} == saved


def test_killed_generative_run_resumes_after_its_last_finished_epoch(fixture_root, clip_gpt2, tmp_path):
    config = flamingo_config(clip_gpt2, epochs=2)
    uninterrupted = run_training(config, text_paths(fixture_root), tmp_path / "whole", seed=3)

    seed_everything(3)
    data = load_data(config, text_paths(fixture_root))
    model = build_model(config.family, config.model, data.info)
    prepared = data.for_training(model)

    spec = TrainSpec.from_mapping({**config.train, "seed": 3})
    with pytest.raises(RuntimeError, match="killed"):
        train(spec, model, prepared._replace(train=KilledInEpochTwo(prepared.train)), tmp_path / "killed")
    assert read_json(tmp_path / "killed" / "resume" / "last.json")["epoch"] == 1

    resumed = run_training(config, text_paths(fixture_root), tmp_path / "killed", seed=3)
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert resumed["best_val_loss"] == pytest.approx(uninterrupted["best_val_loss"], rel=1e-6)
    whole, _ = load_checkpoint(tmp_path / "whole")
    again, _ = load_checkpoint(tmp_path / "killed")
    for (name, a), (_, b) in zip(whole.module.state_dict().items(), again.module.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_generated_predictions_cover_the_split(fixture_root, clip_gpt2, tmp_path):
    config = flamingo_config(clip_gpt2, epochs=1)
    run_training(config, text_paths(fixture_root), tmp_path / "run", seed=0)
    test = split_paths(fixture_root, "test", None)
    frame = run_prediction(tmp_path / "run", test, tmp_path / "test.parquet", PredictSpec(), generation=config.generation())
    assert list(frame.columns) == GENERATION_COLUMNS
    assert frame["question_id"].tolist() == pd.read_parquet(test.parquet, columns=["question_id"])["question_id"].tolist()
    assert frame["confidence"].between(0, 1).all() and (frame["confidence"] == frame["answer_prob"]).all()
    assert (frame["answer_prob"] <= frame["answer_prob_mean"] + 1e-12).all()
