"""Batched generation: left padding changes nothing, probabilities are consistent, files are written."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from vlm.vlm_fixture import vqa_examples

from builders import vqa_rows
from medvqa.data.answers import write_answers
from medvqa.data.images import build_image_cache
from medvqa.models.generation import (
    GenerationSpec, answer_lengths, generate_answers, prediction_frame, sequence_probabilities,
)
from medvqa.demo.tiny_vlm import TINY_ARCHITECTURES
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.io import write_parquet
from medvqa.models.batch import SplitPaths
from medvqa.models.vlm_collate import VlmCollator, load_examples
from medvqa.models.vlm_sft import VlmSftSpec, generation_stop_ids, load_vlm, model_type_of, prompt_format
from medvqa.spec import ConfigError
from medvqa.training.train import ModelConfig, TrainPaths, run_training


def _setup(tiny_vlm, arch):
    spec = VlmSftSpec.from_mapping({"checkpoint": str(tiny_vlm(arch)), "finetune": False})
    model, processor = load_vlm(spec)
    fmt = prompt_format(spec, processor, model_type_of(model))
    collate = VlmCollator(processor, fmt, with_labels=False, padding_side="left")
    return model, processor, collate, generation_stop_ids(model, processor, fmt)


def _generate(setup, examples, **spec):
    model, processor, collate, stops = setup
    return generate_answers(model, collate, examples, processor.tokenizer, GenerationSpec.from_mapping(spec), stops)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_batched_left_padded_generation_equals_one_at_a_time(tiny_vlm, arch):
    setup = _setup(tiny_vlm, arch)
    examples = vqa_examples(6)  # three question lengths → real left padding in the batch
    batched = _generate(setup, examples, batch_size=6, max_new_tokens=5)
    single = _generate(setup, examples, batch_size=1, max_new_tokens=5)
    assert [r["answer_ids"] for r in batched] == [r["answer_ids"] for r in single]
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]
    assert any(len(r["answer_ids"]) > 2 for r in single)  # several tokens, not just a stop token
    for b, s in zip(batched, single):
        assert b["id"] == s["id"]
        assert math.isclose(b["answer_prob_product"], s["answer_prob_product"], rel_tol=1e-3)
        assert math.isclose(b["answer_prob_mean"], s["answer_prob_mean"], rel_tol=1e-3)


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava_next"])
def test_scores_and_a_second_forward_pass_give_the_same_probabilities(tiny_vlm, arch):
    setup = _setup(tiny_vlm, arch)
    examples = vqa_examples(4)
    scores = _generate(setup, examples, batch_size=4, max_new_tokens=4, answer_prob_from="scores")
    forward = _generate(setup, examples, batch_size=4, max_new_tokens=4, answer_prob_from="forward")
    for a, b in zip(scores, forward):
        assert a["answer_ids"] == b["answer_ids"]
        assert math.isclose(a["answer_prob_product"], b["answer_prob_product"], rel_tol=1e-4)
        assert math.isclose(a["answer_prob_mean"], b["answer_prob_mean"], rel_tol=1e-4)


def test_samples_beams_and_probability_ranges(tiny_vlm):
    setup = _setup(tiny_vlm, "qwen2_5_vl")
    examples = vqa_examples(3)
    torch.manual_seed(0)
    results = _generate(setup, examples, batch_size=2, max_new_tokens=3, num_samples=4, temperature=1.5)
    beams = _generate(setup, examples, batch_size=2, max_new_tokens=3, num_beams=2)
    for r in results + beams:
        assert 0.0 <= r["answer_prob_product"] <= r["answer_prob_mean"] + 1e-12 <= 1.0 + 1e-12
    assert all(len(r["samples"]) == 4 and all(isinstance(s, str) for s in r["samples"]) for r in results)
    assert len({s for r in results for s in r["samples"]}) > 1  # sampling, not greedy
    assert all(r["samples"] == [] for r in beams)


def test_answer_lengths_and_sequence_probabilities_by_hand():
    tokens = torch.tensor([[5, 9, 2, 0], [7, 7, 7, 7], [3, 0, 0, 0]])
    lengths = answer_lengths(tokens, stop_ids=[2, 3])
    assert lengths.tolist() == [3, 4, 1]  # up to and including the first stop token
    probs = torch.tensor([[0.5, 0.5, 0.8, 0.1], [1.0, 0.5, 0.5, 0.5], [0.9, 0.1, 0.1, 0.1]])
    product, mean = sequence_probabilities(probs, lengths)
    assert product == pytest.approx([0.2, 0.125, 0.9])
    assert mean == pytest.approx([0.6, 0.625, 0.9])


def test_predictions_table_and_its_confidence_column(tmp_path):
    results = [{"id": "q1", "prediction": "yes", "answer_prob_product": 0.25, "answer_prob_mean": 0.5,
                "samples": ["yes", "no"]}]
    write_parquet(prediction_frame(results), tmp_path / "p.parquet")
    frame = pd.read_parquet(tmp_path / "p.parquet")
    columns = ["question_id", "prediction", "confidence", "answer_prob", "answer_prob_mean", "samples"]
    assert list(frame.columns) == columns
    assert frame.loc[0, "confidence"] == 0.25 and list(frame.loc[0, "samples"]) == ["yes", "no"]
    assert prediction_frame(results, confidence="mean").loc[0, "confidence"] == 0.5
    with pytest.raises(ConfigError, match="num_beams"):
        GenerationSpec.from_mapping({"answer_prob_from": "scores", "num_beams": 2})


def _split_files(root, split, n_images):
    rows = vqa_rows(n_images=n_images, questions_per_image=2, split=split)
    rows.to_parquet(root / f"{split}.parquet")
    paths = SplitPaths(root / f"{split}.parquet", root / f"images_56.{split}.npy", root / f"images_56.{split}.ids.json")
    build_image_cache(paths.parquet, 56, paths.images, paths.image_ids)
    if split == "train":
        write_answers(paths.parquet, [], root / "answers.json")
    return paths


@pytest.mark.parametrize("arch", ["internvl", "qwen3_vl", "gemma3", "idefics3"])
def test_training_and_prediction_stages_from_files(tiny_vlm, tmp_path, arch):
    train, test = _split_files(tmp_path, "train", 4), _split_files(tmp_path, "test", 2)
    config = ModelConfig.from_mapping({
        "family": "vlm_sft", "model": {"checkpoint": str(tiny_vlm(arch)), "lora_r": 4},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu"},
        "generate": {"max_new_tokens": 3, "num_samples": 2},
    })
    state = run_training(config, TrainPaths(train, test, tmp_path / "answers.json"), tmp_path / "run", seed=1)
    assert state["epoch"] == 2 and (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    frame = run_prediction(tmp_path / "run", test, tmp_path / "p.parquet", PredictSpec(), generation=config.generation())
    assert frame["question_id"].tolist() == pd.read_parquet(test.parquet)["question_id"].tolist()
    assert frame["samples"].map(len).eq(2).all() and frame["confidence"].between(0, 1).all()


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl", "gemma3", "idefics3"])
def test_zero_shot_entry_trains_nothing_and_answers_with_the_base_model(tiny_vlm, tmp_path, arch):
    train, test = _split_files(tmp_path, "train", 4), _split_files(tmp_path, "test", 2)
    config = ModelConfig.from_mapping({
        "family": "vlm_sft", "model": {"checkpoint": str(tiny_vlm(arch))},  # no train: block
        "generate": {"max_new_tokens": 3},
    })
    state = run_training(config, TrainPaths(train, test, tmp_path / "answers.json"), tmp_path / "run", seed=0)
    assert state["epoch"] == 0 and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.csv", "state.json"]
    assert pd.read_csv(tmp_path / "run" / "history.csv").empty
    frame = run_prediction(tmp_path / "run", test, tmp_path / "p.parquet", PredictSpec(), generation=config.generation())
    # The base checkpoint as loaded directly, with no adapter, answers the same.
    examples = load_examples(test.parquet, test.images, test.image_ids)
    expected = _generate(_setup(tiny_vlm, arch), examples, batch_size=8, max_new_tokens=3)
    assert frame["prediction"].tolist() == [r["prediction"] for r in expected]
