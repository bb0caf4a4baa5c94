"""The flamingo family on a tiny CLIP + GPT-2 written by medvqa.demo.tiny_hf."""

import pytest
import torch
from safetensors.torch import load_model, save_model
from transformers import GPT2LMHeadModel

from medvqa.models import flamingo
from medvqa.models.common import DataInfo
from medvqa.models.flamingo_generate import predict
from medvqa.models.generation import GenerationSpec
from medvqa.models.generative import IGNORE_INDEX
from medvqa.spec import ConfigError

ANSWERS = ["yes", "no", "red", "blue"]


def make(clip_gpt2, **overrides):
    config = {"vision": str(clip_gpt2["vision"]), "lm": str(clip_gpt2["lm"]), "num_latents": 4, "heads": 2,
              "resampler_depth": 1, "cross_attn_every": 1, **overrides}
    args = flamingo.builder_args(config, DataInfo(n_answers=len(ANSWERS), image_size=32))
    torch.manual_seed(0)
    return args, flamingo.build(args, load_pretrained=True), flamingo.load_tokenizer(args)


def batch_of(split, tokenizer, args, rows=None):
    rows = range(len(split)) if rows is None else rows
    return flamingo.collate([split[i] for i in rows], tokenizer, args, ANSWERS)


def test_unknown_key_and_bad_head_are_rejected(clip_gpt2):
    with pytest.raises(ConfigError, match="gates"):
        make(clip_gpt2, gates=2)
    with pytest.raises(ConfigError, match="answer_head"):
        make(clip_gpt2, answer_head="rank")


def test_label_mask_is_exact_for_a_known_prompt_and_answer(clip_gpt2):
    args, _, tok = make(clip_gpt2)
    image = torch.zeros(32, 32, 3, dtype=torch.uint8)
    examples = [
        {"id": "a", "image": image, "question": "Is the image red?", "answer": "Yes."},
        {"id": "b", "image": image, "question": "What colour?", "answer": "dark red"},
    ]
    batch = flamingo.collate(examples, tok, args, ANSWERS)
    eos = tok.eos_token_id
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in
               ("Question: Is the image red? Answer:", "Question: What colour? Answer:")]
    answers = [tok(" yes", add_special_tokens=False)["input_ids"] + [eos],
               tok(" dark red", add_special_tokens=False)["input_ids"] + [eos]]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers))
    for row, (p, a) in enumerate(zip(prompts, answers)):
        pad = width - len(p) - len(a)
        assert batch["input_ids"][row].tolist() == [eos] * pad + p + a  # GPT-2 pads with <|endoftext|>
        assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * (len(p) + len(a))
        assert batch["labels"][row].tolist() == [IGNORE_INDEX] * (pad + len(p)) + a
        assert batch["prompt_last"][row] == pad + len(p) - 1
        prompt_pad = batch["prompt_ids"].shape[1] - len(p)
        assert batch["prompt_ids"][row].tolist() == [eos] * prompt_pad + p
        assert batch["prompt_mask"][row].tolist() == [0] * prompt_pad + [1] * len(p)
    assert batch["class_labels"].tolist() == [0, IGNORE_INDEX]  # "dark red" is not in answers.json


def test_gates_at_zero_reproduce_the_frozen_gpt2_exactly(clip_gpt2, vqa_split):
    args, model, tok = make(clip_gpt2)
    gpt2 = GPT2LMHeadModel.from_pretrained(clip_gpt2["lm"]).eval()
    model.eval()
    batch = batch_of(vqa_split, tok, args, rows=[0, 1, 4])  # prompts of different lengths: left padding
    mask = batch["attention_mask"]
    position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        media = model.encode_images(batch["images"].permute(0, 3, 1, 2).float() / 255)
        ours = model.lm_head(model(media, batch["input_ids"], mask))
        reference = gpt2(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids).logits
        assert all(float(p) == 0.0 for n, p in model.named_parameters() if n.endswith("_gate"))
        assert torch.equal(ours[mask.bool()], reference[mask.bool()])
        # The blocks are really wired in: an open gate changes the output.
        model.layers[0].xattn.attn_gate.fill_(1.0)
        assert not torch.allclose(model.lm_head(model(media, batch["input_ids"], mask)), ours)


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_finetune_lowers_the_loss_and_trains_only_the_new_layers(clip_gpt2, vqa_split, train_steps):
    args, model, tok = make(clip_gpt2)
    before = _snapshot(model)
    losses = train_steps(model, flamingo.loss, batch_of(vqa_split, tok, args), steps=40, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("resampler.") or ".xattn." in n for n in trainable)
    assert {n for n in trainable if n.endswith("_gate")}  # the tanh gates are trained
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == trainable  # every new layer moved; CLIP and GPT-2 did not
    assert any(n.startswith("vision.") for n in before) and any(".block." in n for n in before)
    groups = flamingo.param_groups(model)
    assert not groups["backbone"] and len(groups["head"]) == len(trainable)


def test_classification_head_variant_trains_and_predicts_answers(clip_gpt2, vqa_split, train_steps):
    args, model, tok = make(clip_gpt2, answer_head="classify", classifier_weight=2.0)
    head_before = model.classifier.weight.detach().clone()
    batch = batch_of(vqa_split, tok, args)
    losses = train_steps(model, flamingo.loss, batch, steps=40, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(head_before, model.classifier.weight)
    out = predict(model, batch, tok, GenerationSpec(num_samples=3), ANSWERS, torch.Generator().manual_seed(0))
    assert len(out) == len(vqa_split)
    for row in out:
        assert row["prediction"] in ANSWERS and all(s in ANSWERS for s in row["samples"])
        assert len(row["samples"]) == 3 and 0 < row["answer_prob_product"] == row["answer_prob_mean"] <= 1
    truth = [vqa_split[i]["answer"].lower() for i in range(len(vqa_split))]
    assert sum(r["prediction"] == t for r, t in zip(out, truth)) >= 0.75 * len(truth)


def test_save_and_reload_give_identical_logits(clip_gpt2, vqa_split, train_steps, tmp_path):
    args, model, tok = make(clip_gpt2)
    batch = batch_of(vqa_split, tok, args, rows=[0, 1, 2])
    train_steps(model, flamingo.loss, batch, steps=3)  # gates away from zero
    save_model(model, str(tmp_path / "weights.safetensors"))  # how the training engine saves
    rebuilt = flamingo.build(args, load_pretrained=False)
    load_model(rebuilt, str(tmp_path / "weights.safetensors"), strict=True)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        images = batch["images"].permute(0, 3, 1, 2).float() / 255
        logits = [m.lm_head(m(m.encode_images(images), batch["input_ids"], batch["attention_mask"]))
                  for m in (model, rebuilt)]
    assert torch.equal(*logits)


def test_batched_generation_equals_one_at_a_time(clip_gpt2, vqa_split, train_steps):
    args, model, tok = make(clip_gpt2)
    batch = batch_of(vqa_split, tok, args)
    train_steps(model, flamingo.loss, batch, steps=40, lr=1e-2)
    spec = GenerationSpec(max_new_tokens=4)
    rows = [0, 1, 2, 4, 5]
    together = predict(model, batch_of(vqa_split, tok, args, rows), tok, spec)
    alone = [predict(model, batch_of(vqa_split, tok, args, [i]), tok, spec)[0] for i in rows]
    no_cache = GenerationSpec(max_new_tokens=4, use_cache=False)
    without_cache = predict(model, batch_of(vqa_split, tok, args, rows), tok, no_cache)
    for a, b, c in zip(together, alone, without_cache):
        assert a["prediction"] == b["prediction"] == c["prediction"]
        for key in ("answer_prob_product", "answer_prob_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7)
            assert a[key] == pytest.approx(c[key], rel=1e-4, abs=1e-7)
    assert {r["prediction"] for r in together} <= {"yes", "no", "red", "blue"}


def test_sampled_answers_are_seeded(clip_gpt2, vqa_split):
    args, model, tok = make(clip_gpt2)
    batch = batch_of(vqa_split, tok, args, rows=[0, 1])
    spec = GenerationSpec(max_new_tokens=3, num_samples=4, temperature=1.5)
    first, second = (predict(model, batch, tok, spec, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert [r["samples"] for r in first] == [r["samples"] for r in second]
    assert all(len(r["samples"]) == 4 for r in first)
