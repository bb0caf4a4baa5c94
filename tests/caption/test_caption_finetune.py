"""Fine-tuned captioning: each captioning family trains on a caption split (no answers.json) through
``medvqa.training.train.run_training`` and then captions from its run directory."""

from __future__ import annotations

import pandas as pd
import pytest
from caption.conftest import IMAGE_SIZE

from medvqa.data.images import load_image_cache
from medvqa.demo.tiny_hf import write_tiny_clip_gpt2
from medvqa.inference.caption import CaptionSpec, caption_images, load_captioner
from medvqa.models.batch import SplitPaths
from medvqa.spec import ConfigError
from medvqa.training.train import ModelConfig, TrainPaths, run_training

TRAIN = {"epochs": 4, "batch_size": 4, "lr": 0.01, "backbone_lr": 0.003, "warmup": 0.0, "weight_decay": 0.0,
         "patience": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def caption_paths(caption_split) -> TrainPaths:
    """The 10-image caption split as both train and val (a caption dataset has no answers.json)."""
    split = SplitPaths(caption_split["data"], caption_split["images"], caption_split["image_ids"])
    return TrainPaths(split, split)


def _entries(tmp_path, texts, blip_dir, tiny_vlm, vlm_arch: str = "qwen2_vl") -> dict[str, dict]:
    towers = write_tiny_clip_gpt2(tmp_path / "clip_gpt2", texts, seed=0, image_size=IMAGE_SIZE)
    return {
        "blip": {"family": "blip", "model": {"checkpoint": str(blip_dir), "task": "caption"}},
        "flamingo": {"family": "flamingo", "model": {
            "vision": str(towers["vision"]), "lm": str(towers["lm"]), "num_latents": 4, "resampler_depth": 1,
            "heads": 2, "prompt": "Caption:", "max_answer_tokens": 32}},
        "vlm": {"family": "vlm_sft", "model": {
            "checkpoint": str(tiny_vlm(vlm_arch)), "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
            "caption_prompt": "Write the report."}},
    }


@pytest.mark.parametrize("kind, vlm_arch", [
    ("blip", None), ("flamingo", None), ("vlm", "qwen2_vl"), ("vlm", "qwen3_vl"), ("vlm", "gemma3"),
    ("vlm", "idefics3"),
])
def test_captioning_families_fine_tune_on_captions_and_caption_from_the_run(
    kind, vlm_arch, caption_split, caption_paths, texts, blip_dir, tiny_vlm, tmp_path,
):
    entry = {**_entries(tmp_path, texts, blip_dir, tiny_vlm, vlm_arch or "qwen2_vl")[kind], "train": TRAIN}
    state = run_training(ModelConfig.from_mapping(entry), caption_paths, tmp_path / "run", seed=0)

    assert state["answers"] == []  # captions have no answer vocabulary
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0] - 0.1
    captioner = load_captioner(CaptionSpec.from_mapping({"kind": kind, "max_new_tokens": 12}), tmp_path / "run")
    cache, _ = load_image_cache(caption_split["images"], caption_split["image_ids"])
    captions, seconds = caption_images(captioner, [cache[i] for i in range(4)], batch_size=2)
    assert len(captions) == len(seconds) == 4 and any(c.strip() for c in captions)
    assert captions == caption_images(captioner, [cache[i] for i in range(4)], batch_size=1)[0]  # padding-free


def test_vlm_caption_prompt_comes_from_the_run_unless_the_caption_settings_give_one(
    caption_split, caption_paths, texts, blip_dir, tiny_vlm, tmp_path,
):
    entry = {**_entries(tmp_path, texts, blip_dir, tiny_vlm)["vlm"], "train": {**TRAIN, "epochs": 1}}
    run_training(ModelConfig.from_mapping(entry), caption_paths, tmp_path / "run", seed=0)
    cache, _ = load_image_cache(caption_split["images"], caption_split["image_ids"])
    images = [cache[i] for i in range(3)]

    def captions(**settings):
        spec = CaptionSpec.from_mapping({"kind": "vlm", "max_new_tokens": 8, **settings})
        return caption_images(load_captioner(spec, tmp_path / "run"), images, batch_size=3)[0]

    assert captions() == captions(prompt="Write the report.")
    assert captions() != captions(prompt="Describe this medical image.")


def test_families_that_need_answers_refuse_caption_data(caption_paths, texts, blip_dir, tiny_vlm, tmp_path):
    entries = _entries(tmp_path, texts, blip_dir, tiny_vlm)
    vqa_blip = {"family": "blip", "model": {"checkpoint": str(blip_dir), "task": "vqa"}, "train": TRAIN}
    classify = {**entries["flamingo"], "model": {**entries["flamingo"]["model"], "answer_head": "classify"},
                "train": TRAIN}
    for entry in (vqa_blip, classify):
        with pytest.raises(ConfigError, match="is caption data; this .* model trains on vqa data"):
            run_training(ModelConfig.from_mapping(entry), caption_paths, tmp_path / "run", seed=0)
    assert not (tmp_path / "run").exists()


def test_flamingo_has_no_zero_shot_captioner():
    with pytest.raises(ConfigError, match="train it on the caption dataset"):
        load_captioner(CaptionSpec.from_mapping({"kind": "flamingo", "checkpoint": "gpt2"}))
