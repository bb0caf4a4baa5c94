"""vlm_sft LoRA fine-tuning through the shared engine: the loss falls, only LoRA weights move,
the checkpoint and the exported PEFT adapter reload exactly."""

from __future__ import annotations

import importlib.util
import re

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from vlm.vlm_fixture import vqa_examples

from medvqa.demo.tiny_vlm import TINY_ARCHITECTURES
from medvqa.models.checkpoint import load_checkpoint
from medvqa.families import ModelConfig
from medvqa.models.common import DataInfo, finetuned
from medvqa.models.registry import MODEL_FAMILIES, build_model
from medvqa.models.vlm_collate import VlmCollator
from medvqa.models.vlm_sft import VlmSftSpec, architecture_of, build_vlm, load_vlm, prompt_format
from medvqa.spec import ConfigError
from medvqa.training.engine import LOSS_COLUMNS, TrainData, TrainSpec, train

LORA = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
TRAIN = TrainSpec.from_mapping(
    {"epochs": 4, "batch_size": 4, "lr": 5e-3, "warmup": 0.0, "weight_decay": 0.0, "device": "cpu"}
)
INFO = DataInfo(n_answers=2, image_size=56)


def _batch_loss_and_logits(model, batch):
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    return float(out.loss), out.logits


def _built(tiny_vlm, arch, **model):
    return build_model("vlm_sft", {"checkpoint": str(tiny_vlm(arch)), **LORA, **model}, INFO)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_lora_fine_tune_trains_only_the_adapter_and_reloads_exactly(tiny_vlm, arch, tmp_path):
    model = _built(tiny_vlm, arch)
    module = model.module
    lora = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}
    language_model = architecture_of(arch).language_model  # SmolVLM's LM is model.text_model
    assert lora and all("lora_" in n and re.search(language_model, n) for n in lora)  # no LoRA in the vision tower
    examples = vqa_examples(8)
    collate = MODEL_FAMILIES["vlm_sft"].collate(model.args, ["yes", "no"], 0)
    batch = collate(examples[:4])
    loss_before, _ = _batch_loss_and_logits(module, batch)

    state = train(TRAIN, model, TrainData(examples, examples[:4], ["yes", "no"], collate), tmp_path)

    history = pd.read_csv(tmp_path / "history.csv")
    assert tuple(history.columns) == LOSS_COLUMNS  # no accuracy: the validation loss selects
    assert history["train_loss"].is_monotonic_decreasing and history["val_loss"].is_monotonic_decreasing
    loss_after, logits = _batch_loss_and_logits(module, batch)
    assert loss_after < loss_before - 0.05
    params = dict(module.named_parameters())
    assert all(not torch.equal(params[n], before) for n, before in lora.items() if "lora_B" in n)
    assert all(torch.equal(params[n], before) for n, before in frozen.items())
    # The best epoch is the last one (the loss falls), so the saved adapter is the model in memory.
    assert state["monitor"] == "val_loss" and state["best_epoch"] == TRAIN.epochs
    with safe_open(tmp_path / "best.safetensors", "pt") as f:
        assert sorted(f.keys()) == sorted(lora)  # the adapter alone, not the base
    reloaded, _ = load_checkpoint(tmp_path)
    _, reloaded_logits = _batch_loss_and_logits(reloaded.module, batch)
    torch.testing.assert_close(reloaded_logits, logits, rtol=0, atol=1e-6)
    # The exported adapter is PEFT's own format: base + PeftModel.from_pretrained gives the same model.
    with safe_open(tmp_path / "adapter" / "adapter_model.safetensors", "pt") as f:
        assert f.keys() and all("lora_" in k for k in f.keys())
    peft_model, _ = load_vlm(VlmSftSpec(str(tiny_vlm(arch)), **LORA), tmp_path / "adapter")
    _, peft_logits = _batch_loss_and_logits(peft_model, batch)
    torch.testing.assert_close(peft_logits, logits, rtol=0, atol=1e-6)


def test_zero_shot_entry_has_nothing_to_train_and_rebuilds_the_base_model(tiny_vlm):
    model = _built(tiny_vlm, "qwen2_vl", finetune=False)
    assert not finetuned(model.args)
    assert not hasattr(model.module, "peft_config")
    assert not any(p.requires_grad for p in model.module.parameters())
    assert type(model.module).__name__ == "Qwen2VLForConditionalGeneration"


def test_lora_can_include_the_vision_tower_and_custom_modules(tiny_vlm):
    path = str(tiny_vlm("llava"))
    spec = VlmSftSpec.from_mapping({"checkpoint": path, "lora_language_model_only": False, **LORA})
    names = [n for n, p in build_vlm(spec)[0].named_parameters() if p.requires_grad]
    assert any("vision_tower" in n for n in names) and any("language_model" in n for n in names)
    spec = VlmSftSpec.from_mapping({"checkpoint": path, "lora_target_modules": ["gate_proj", "up_proj"], **LORA})
    names = [n for n, p in build_vlm(spec)[0].named_parameters() if p.requires_grad]
    assert names and all(".mlp.gate_proj." in n or ".mlp.up_proj." in n for n in names)
    with pytest.raises(ConfigError, match="matched no module"):
        build_vlm(VlmSftSpec.from_mapping({"checkpoint": path, "lora_target_modules": ["nothing"]}))


def test_gradient_checkpointing_still_trains_lora(tiny_vlm):
    spec = VlmSftSpec.from_mapping({"checkpoint": str(tiny_vlm("qwen2_vl")), "gradient_checkpointing": True, **LORA})
    model, processor = build_vlm(spec)
    model.train()
    batch = VlmCollator(processor, prompt_format(spec, processor, "qwen2_vl"))(vqa_examples(2))
    model(**batch).loss.backward()
    # lora_B starts at zero, so only its gradients are non-zero on the first step.
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_max_pixels_sets_the_number_of_image_tokens(tiny_vlm):
    from medvqa.models.vlm_sft import load_processor

    path = str(tiny_vlm("qwen2_vl"))
    counts = []
    for max_pixels in (28 * 28, 56 * 56):
        processor = load_processor(VlmSftSpec.from_mapping({"checkpoint": path, "max_pixels": max_pixels}))
        batch = VlmCollator(processor, prompt_format(VlmSftSpec(path), processor, "qwen2_vl"))(vqa_examples(1))
        counts.append(int((batch["input_ids"] == processor.image_token_id).sum()))
    assert counts == [1, 4]  # 28 px: 2×2 patches → 1 merged token; 56 px: 4×4 → 4


def test_qlora_without_bitsandbytes_fails_clearly(tiny_vlm, monkeypatch):
    # The test extra installs bitsandbytes; hide it as on a machine without it.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a))
    spec = VlmSftSpec.from_mapping({"checkpoint": str(tiny_vlm("qwen2_vl")), "quantization": "4bit"})
    with pytest.raises(ConfigError, match="bitsandbytes"):
        build_vlm(spec)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (test extra)")
def test_qlora_trains_lora_over_a_4bit_base_on_cpu(tmp_path):
    from bitsandbytes.nn import Linear4bit
    from vlm.vlm_fixture import ANSWERS, QUESTIONS

    from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm

    # bitsandbytes quantises in blocks of 64 inputs: every layer must be at least that wide.
    sizes = TinyVlmSpec(vision_hidden_size=64)
    checkpoint = write_tiny_vlm("qwen2_vl", tmp_path / "qwen", [*QUESTIONS, *ANSWERS] * 3, seed=0, spec=sizes)
    model = build_model("vlm_sft", {"checkpoint": str(checkpoint), **LORA, "quantization": "4bit"}, INFO)
    module = model.module
    quantised = [n for n, m in module.named_modules() if isinstance(m, Linear4bit)]
    assert quantised and all(".language_model." in n or ".visual." in n for n in quantised)
    lora = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    examples = vqa_examples(8)
    collate = MODEL_FAMILIES["vlm_sft"].collate(model.args, ["yes", "no"], 0)
    # Several epochs: each validation pass (eval mode, no grad) is followed by training steps,
    # which bitsandbytes' CPU inference repacking used to break (vlm_sft.keep_4bit_weights_trainable).
    spec = TrainSpec.from_mapping({**TRAIN.to_dict(), "epochs": 3, "batch_size": 2})
    train(spec, model, TrainData(examples, examples[:4], ["yes", "no"], collate), tmp_path / "run")
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 3 and history["val_loss"].is_monotonic_decreasing
    params = dict(module.named_parameters())
    assert any(not torch.equal(params[n], before) for n, before in lora.items())
    # The run reloads (4-bit base + the saved LoRA weights) and computes what the trained model does.
    batch = collate(examples[:2])
    _, expected = _batch_loss_and_logits(module, batch)
    reloaded, _ = load_checkpoint(tmp_path / "run")
    _, logits = _batch_loss_and_logits(reloaded.module, batch)
    torch.testing.assert_close(logits, expected)


def test_specs_reject_bad_settings():
    with pytest.raises(ConfigError, match="lora_rank"):
        VlmSftSpec.from_mapping({"checkpoint": "x", "lora_rank": 8})
    with pytest.raises(ConfigError, match="quantization"):
        VlmSftSpec.from_mapping({"checkpoint": "x", "quantization": "8bit"})
    with pytest.raises(ConfigError, match="models.m.model.quantization: 4bit is for QLoRA fine-tuning; this entry "
                                          "has no train: block"):
        ModelConfig.from_mapping({"family": "vlm_sft", "model": {"checkpoint": "x", "quantization": "4bit"}},
                                 "models.m")
    with pytest.raises(ConfigError, match="grad_accum"):
        TrainSpec.from_mapping({"grad_accum": 0})
