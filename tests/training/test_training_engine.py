"""The training loop on the tiny fixture: learning, freezing, checkpoints, resumption."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from training.vqa_fixture import KilledInEpochTwo, clip_config, cnn_lstm_config, split_paths, train_paths

from medvqa.io import read_json
from medvqa.models.batch import VQASplit, classifier_collate, make_loader
from medvqa.models.checkpoint import load_checkpoint
from medvqa.models.classify import forward_batch
from medvqa.models.registry import build_model
from medvqa.seed import seed_everything
from medvqa.spec import ConfigError
from medvqa.training.engine import TrainSpec, train, warmup_cosine
from medvqa.training.train import ModelConfig, load_data, run_training


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def built(config: ModelConfig, root, tokenizer: str, seed: int = 0):
    seed_everything(seed)
    data = load_data(config, train_paths(root, tokenizer))
    model = build_model(config.family, config.model, data.info)
    return model, data.for_training(model)


@pytest.mark.parametrize("family", ["cnn_lstm", "clip_classifier"])
def test_training_lowers_the_loss_and_moves_exactly_the_trainable_parameters(fixture_root, tmp_path, family):
    config = cnn_lstm_config(epochs=3) if family == "cnn_lstm" else clip_config(fixture_root, epochs=3)
    model, data = built(config, fixture_root, "words" if family == "cnn_lstm" else "clip")
    before = snapshot(model.module)
    trainable = {n for n, p in model.module.named_parameters() if p.requires_grad}
    train(TrainSpec.from_mapping(config.train), model, data, tmp_path)

    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    after = snapshot(model.module)
    unchanged = sorted(n for n in trainable if torch.equal(before[n], after[n]))
    assert unchanged == []
    moved_frozen = sorted(n for n in set(before) - trainable if not torch.equal(before[n], after[n]))
    assert moved_frozen == []
    if family == "clip_classifier":
        assert any(n.startswith("clip.") for n in trainable)
        assert len(trainable) < len(before)  # most of CLIP is frozen


def test_clip_unfreezes_only_the_last_blocks_and_the_projections(fixture_root):
    model, _ = built(clip_config(fixture_root), fixture_root, "clip")
    clip_trainable = {n for n, p in model.module.clip.named_parameters() if p.requires_grad}
    prefixes = ("vision_model.encoder.layers.1.", "text_model.encoder.layers.1.", "visual_projection.",
                "text_projection.", "vision_model.post_layernorm.", "text_model.final_layer_norm.")
    assert clip_trainable and all(n.startswith(prefixes) for n in clip_trainable)
    assert all(any(n.startswith(p) for n in clip_trainable) for p in prefixes)


def test_killed_run_resumes_after_its_last_finished_epoch(fixture_root, tmp_path):
    config = cnn_lstm_config(epochs=2)
    uninterrupted = run_training(config, train_paths(fixture_root, "words"), tmp_path / "whole", seed=3)

    model, data = built(config, fixture_root, "words", seed=3)

    spec = TrainSpec.from_mapping({**config.train, "seed": 3})
    with pytest.raises(RuntimeError, match="killed"):
        train(spec, model, data._replace(train=KilledInEpochTwo(data.train)), tmp_path / "killed")
    assert read_json(tmp_path / "killed" / "resume" / "last.json")["epoch"] == 1
    assert not (tmp_path / "killed" / "state.json").exists()
    seconds_of_epoch_1 = pd.read_csv(tmp_path / "killed" / "resume" / "history.csv")["seconds"].iloc[0]

    resumed = run_training(config, train_paths(fixture_root, "words"), tmp_path / "killed", seed=3)
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["seconds"].iloc[0] == seconds_of_epoch_1  # epoch 1 was not trained again
    assert resumed["best_val_accuracy"] == uninterrupted["best_val_accuracy"]
    whole, _ = load_checkpoint(tmp_path / "whole")
    again, _ = load_checkpoint(tmp_path / "killed")
    for (name, a), (_, b) in zip(whole.module.state_dict().items(), again.module.state_dict().items()):
        assert torch.equal(a, b), name


def test_more_epochs_continue_a_finished_run(fixture_root, tmp_path):
    run_training(cnn_lstm_config(epochs=1), train_paths(fixture_root, "words"), tmp_path, seed=0)
    first = pd.read_csv(tmp_path / "history.csv")
    run_training(cnn_lstm_config(epochs=2), train_paths(fixture_root, "words"), tmp_path, seed=0)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(history.iloc[:1], first)
    assert read_json(tmp_path / "state.json")["epoch"] == 2


def test_a_changed_config_starts_afresh(fixture_root, tmp_path):
    run_training(cnn_lstm_config(epochs=1), train_paths(fixture_root, "words"), tmp_path, seed=0)
    run_training(cnn_lstm_config(epochs=1, lr=1e-4), train_paths(fixture_root, "words"), tmp_path, seed=0)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1
    assert read_json(tmp_path / "state.json")["spec"]["lr"] == 1e-4


def test_rebuilt_input_files_start_afresh_even_with_the_same_config(fixture_root, tmp_path, caplog):
    root = Path(shutil.copytree(fixture_root, tmp_path / "fixture"))
    paths = train_paths(root, "words")
    run_training(cnn_lstm_config(epochs=1), paths, tmp_path / "run", seed=0)
    first = pd.read_csv(tmp_path / "run" / "history.csv")
    # A data stage rewrites the train split (one question fewer); then more epochs are asked for.
    train = pd.read_parquet(paths.train.parquet)
    train.iloc[1:].to_parquet(paths.train.parquet)
    with caplog.at_level("WARNING"):
        state = run_training(cnn_lstm_config(epochs=2), paths, tmp_path / "run", seed=0)
    assert "different configuration: starting afresh" in caplog.text
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["train_loss"].iloc[0] != first["train_loss"].iloc[0]  # epoch 1 was trained again
    stamp = paths.train.parquet.stat()
    saved = read_json(tmp_path / "run" / "resume" / "last.json")["inputs"]
    assert saved["train"] == [["train.parquet", stamp.st_size, stamp.st_mtime_ns]]
    assert "inputs" not in state and "inputs" not in read_json(tmp_path / "run" / "state.json")


@pytest.mark.parametrize("family", ["cnn_lstm", "clip_classifier"])
def test_rebuilt_checkpoint_gives_identical_logits(fixture_root, tmp_path, family):
    tokenizer = "words" if family == "cnn_lstm" else "clip"
    config = cnn_lstm_config(epochs=1) if family == "cnn_lstm" else clip_config(fixture_root, epochs=1)
    model, data = built(config, fixture_root, tokenizer)
    train(TrainSpec.from_mapping(config.train), model, data, tmp_path)
    # epochs=1: the best epoch is the last, so the trained module holds the best weights.
    rebuilt, state = load_checkpoint(tmp_path)
    assert state["family"] == family and state["answers"] == data.answers
    test = VQASplit(split_paths(fixture_root, "test", tokenizer), data.answers)
    batch = next(iter(make_loader(test, 8, classifier_collate(model.args.get("pad_id", 0)), shuffle=False)))
    model.module.eval()
    with torch.no_grad():
        expected, _, out = forward_batch(model.module, batch, torch.device("cpu"))
        got, _, rebuilt_out = forward_batch(rebuilt.module, batch, torch.device("cpu"))
    assert torch.equal(expected, got)
    if family == "cnn_lstm":
        assert torch.equal(out.attention, rebuilt_out.attention)


def test_warmup_then_cosine_schedule():
    factors = [warmup_cosine(step, warmup_steps=2, total_steps=10, min_lr=0.1) for step in range(11)]
    assert factors[0] == 0.5 and factors[1] == 1.0 and factors[2] == 1.0
    assert all(a >= b for a, b in zip(factors[2:], factors[3:]))
    assert math.isclose(factors[10], 0.1)


def test_specs_reject_unknown_keys_and_a_seed_in_the_config():
    with pytest.raises(ConfigError, match="'lerning_rate'"):
        TrainSpec.from_mapping({"lerning_rate": 1.0})
    with pytest.raises(ConfigError, match="augment.*'flipp'"):
        TrainSpec.from_mapping({"augment": {"flipp": True}})
    with pytest.raises(ConfigError, match="wildcard"):
        ModelConfig.from_mapping({"family": "cnn_lstm", "tokenizer": "words", "train": {"seed": 1}})
    with pytest.raises(ConfigError, match="'depth'"):
        ModelConfig.from_mapping({"family": "cnn_lstm", "tokenizer": "words", "model": {"depth": 50}})
    with pytest.raises(ConfigError, match="family"):
        ModelConfig.from_mapping({"family": "resnet", "tokenizer": "words"})
