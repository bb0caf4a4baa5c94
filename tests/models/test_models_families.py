"""The model families: registry, forward contracts, and the tiny CLIP checkpoint writer."""

from __future__ import annotations

import pytest
import torch

from medvqa.demo.pretrained import TinyClipSpec, write_tiny_clip
from medvqa.models.registry import MODEL_FAMILIES, DataInfo, ModelFamily, build_model, rebuild_model

QUESTIONS = ["is there a lesion in the left lung?", "what modality is this?", "how many lesions are there?"]
TINY = TinyClipSpec(patch_size=8, hidden_size=32, layers=3, heads=2, projection_dim=16, vocab_size=300)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip"), QUESTIONS * 5, image_size=32, seed=0, spec=TINY)


def test_families_are_plain_frozen_bundles():
    assert {"cnn_lstm", "clip_classifier"} <= set(MODEL_FAMILIES)
    assert all(isinstance(f, ModelFamily) for f in MODEL_FAMILIES.values())


def test_cnn_lstm_outputs_logits_and_attention_over_the_feature_map():
    info = DataInfo(n_answers=7, image_size=64, vocab_size=30, pad_id=0)
    config = dict(backbone="resnet18", pretrained=False, stages=3, embed_dim=8, hidden_dim=8,
                  attention_dim=8, classifier_dim=16)
    model = build_model("cnn_lstm", config, info).module.eval()
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    out = model(torch.rand(2, 3, 64, 64), ids, (ids != 0).long())
    assert out.logits.shape == (2, 7)
    assert out.attention.shape == (2, 4, 4)  # 64 px / stride 16
    assert torch.allclose(out.attention.sum(dim=(1, 2)), torch.ones(2))


def test_cnn_lstm_ignores_padding():
    info = DataInfo(n_answers=3, image_size=32, vocab_size=12, pad_id=0)
    config = dict(backbone="resnet18", pretrained=False, stages=2, embed_dim=8, hidden_dim=8,
                  attention_dim=8, classifier_dim=16)
    model = build_model("cnn_lstm", config, info).module.eval()
    image = torch.rand(1, 3, 32, 32)
    short = model(image, torch.tensor([[3, 4]]), torch.tensor([[1, 1]])).logits
    padded = model(image, torch.tensor([[3, 4, 0, 0]]), torch.tensor([[1, 1, 0, 0]])).logits
    assert torch.allclose(short, padded, atol=1e-6)


def test_tiny_clip_loads_like_a_hub_checkpoint(clip_dir):
    from transformers import AutoProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir)
    processor = AutoProcessor.from_pretrained(clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(clip_dir)
    assert model.config.vision_config.image_size == 32
    assert model.config.text_config.vocab_size == len(tokenizer)
    ids = tokenizer(QUESTIONS[0])["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "is there a lesion in the left lung ?"
    inputs = processor(text=QUESTIONS, images=[torch.zeros(3, 40, 40, dtype=torch.uint8)] * 3,
                       return_tensors="pt", padding=True)
    assert inputs["pixel_values"].shape == (3, 3, 32, 32)
    assert model(**inputs).logits_per_image.shape == (3, 3)


def test_tiny_clip_is_reproducible(clip_dir, tmp_path):
    from safetensors.torch import load_file

    again = write_tiny_clip(tmp_path, QUESTIONS * 5, image_size=32, seed=0, spec=TINY)
    first, second = load_file(clip_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_clip_classifier_rebuilds_from_its_arguments_alone(clip_dir):
    info = DataInfo(n_answers=4, image_size=32)
    config = {"checkpoint": str(clip_dir), "unfreeze_last": 1, "hidden_dim": 8}
    built = build_model("clip_classifier", config, info)
    assert built.args["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    rebuilt = rebuild_model("clip_classifier", {**built.args, "checkpoint": "/nonexistent"})
    rebuilt.module.load_state_dict(built.module.state_dict())
    images, ids = torch.rand(2, 3, 32, 32), torch.tensor([[0, 5, 6, 1], [0, 7, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    original = built.module.eval()(images, ids, mask)
    assert original.logits.shape == (2, 4) and original.attention is None
    assert torch.equal(rebuilt.module.eval()(images, ids, mask).logits, original.logits)
    trainable = {n.split(".")[0] for n, p in built.module.clip.named_parameters() if p.requires_grad}
    assert trainable == {"vision_model", "text_model", "visual_projection", "text_projection"}
