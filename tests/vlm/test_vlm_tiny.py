"""Tiny VLM checkpoints load through the Auto classes exactly like the hub checkpoints they mimic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medvqa.models.vlm_collate import PromptFormat, render_prompt
from medvqa.spec import ConfigError
from medvqa.demo.tiny_vlm import INTERNVL_SPECIALS, QWEN_SPECIALS, TINY_ARCHITECTURES, TinyVlmSpec, write_tiny_vlm

CLASSES = {
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
    "internvl": ("InternVLForConditionalGeneration", "InternVLProcessor"),
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor"),
    "llava_next": ("LlavaNextForConditionalGeneration", "LlavaNextProcessor"),
}
QWEN_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>Is the image red? Answer briefly.<|im_end|>\n<|im_start|>assistant\n"
)
PROMPTS = {  # what the real checkpoints' chat templates render
    "qwen2_vl": QWEN_PROMPT,
    "qwen2_5_vl": QWEN_PROMPT,
    "internvl": "<|im_start|>user\n<IMG_CONTEXT>\nIs the image red? Answer briefly.<|im_end|>\n<|im_start|>assistant\n",
    "llava": "USER: <image>\nIs the image red? Answer briefly. ASSISTANT:",
    "llava_next": "[INST] <image>\nIs the image red? Answer briefly. [/INST]",
}
SPECIALS = {
    "qwen2_vl": QWEN_SPECIALS, "qwen2_5_vl": QWEN_SPECIALS, "internvl": QWEN_SPECIALS + INTERNVL_SPECIALS,
    "llava": ("<s>", "</s>", "<image>", "<pad>"), "llava_next": ("<s>", "</s>", "<image>", "<pad>"),
}


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_tiny_checkpoint_loads_through_the_auto_classes(tiny_vlm, arch):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_vlm(arch)
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "chat_template.jinja", "processor_config.json"):
        assert (path / name).exists(), name
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    assert (type(model).__name__, type(processor).__name__) == CLASSES[arch]
    assert model.config.model_type == arch
    tokenizer = processor.tokenizer
    assert all(tokenizer.tokenize(t) == [t] for t in SPECIALS[arch]), "special tokens must stay whole"
    prompt = render_prompt(processor, "Is the image red?", PromptFormat(end_of_turn=tokenizer.eos_token))
    assert prompt == PROMPTS[arch]
    image = np.full((64, 64, 3), 120, np.uint8)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_tokenizer_learns_the_texts(tiny_vlm):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_vlm("qwen2_vl"))
    assert len(tokenizer.tokenize("Is there a lesion in the left lung?")) <= 9  # whole words, not bytes
    assert tokenizer.decode(tokenizer("left lung", add_special_tokens=False)["input_ids"]) == "left lung"


def test_write_is_reproducible(tmp_path):
    spec = TinyVlmSpec(vision_layers=1, layers=1)
    a = write_tiny_vlm("llava", tmp_path / "a", ["some text"], seed=3, spec=spec)
    b = write_tiny_vlm("llava", tmp_path / "b", ["some text"], seed=3, spec=spec)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_bad_arguments_fail_with_the_key_named(tmp_path):
    with pytest.raises(ConfigError, match="arch"):
        write_tiny_vlm("blip", tmp_path, ["x"], seed=0)
    with pytest.raises(ConfigError, match="image_size"):
        TinyVlmSpec.from_mapping({"image_size": 50})
