"""vlm_sft collation: exact label masks per architecture, left padding for generation, cached examples."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from vlm.vlm_fixture import vqa_examples

from builders import vqa_rows
from medvqa.data.images import build_image_cache
from medvqa.models.vlm_collate import IGNORE_INDEX, VlmCollator, as_pil, load_examples, render_prompt
from medvqa.models.vlm_sft import VlmSftSpec, load_processor, prompt_format
from medvqa.demo.tiny_vlm import TINY_ARCHITECTURES

END_OF_TURN = {"qwen2_vl": "<|im_end|>", "qwen2_5_vl": "<|im_end|>", "internvl": "<|im_end|>",
               "llava": "</s>", "llava_next": "</s>"}


def encode_prompt(processor, image, prompt: str) -> dict[str, torch.Tensor]:
    """The processor on one image and prompt: the reference the batched collator must equal."""
    return dict(processor(images=[as_pil(image)], text=[prompt], return_tensors="pt"))


def _setup(tiny_vlm, arch):
    from transformers import AutoConfig

    spec = VlmSftSpec.from_mapping({"checkpoint": str(tiny_vlm(arch))})
    processor = load_processor(spec)
    return processor, prompt_format(spec, processor, AutoConfig.from_pretrained(spec.checkpoint).model_type)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_only_the_answer_and_end_of_turn_token_carry_loss(tiny_vlm, arch):
    processor, fmt = _setup(tiny_vlm, arch)
    tokenizer = processor.tokenizer
    assert fmt.end_of_turn == END_OF_TURN[arch]
    examples = vqa_examples(3)[1:]  # two questions of different lengths
    examples[1]["answer"] = "left lung"
    batch = VlmCollator(processor, fmt)(examples)
    width = batch["input_ids"].shape[1]
    assert batch["labels"].shape == batch["input_ids"].shape == batch["attention_mask"].shape
    for row, example in enumerate(examples):
        prompt = encode_prompt(processor, example["image"], render_prompt(processor, example["question"], fmt))
        prompt_ids = prompt["input_ids"][0].tolist()
        target = tokenizer(example["answer"] + fmt.end_of_turn, add_special_tokens=False)["input_ids"]
        n = len(prompt_ids) + len(target)
        # Right padding: real tokens first, then pad ids with mask 0.
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["input_ids"][row, :n].tolist() == prompt_ids + target
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        labels = batch["labels"][row].tolist()
        assert labels == [IGNORE_INDEX] * len(prompt_ids) + target + [IGNORE_INDEX] * (width - n)
        kept = [t for t in labels if t != IGNORE_INDEX]
        assert tokenizer.decode(kept) == example["answer"] + END_OF_TURN[arch]
        assert kept[-1] == tokenizer.convert_tokens_to_ids(END_OF_TURN[arch])
    # The image placeholders are prompt tokens, so none of them is a label.
    image_id = processor.image_token_id
    assert (batch["input_ids"] == image_id).any()
    assert not (batch["labels"] == image_id).any()


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_caption_examples_learn_the_caption_after_the_caption_prompt(tiny_vlm, arch):
    processor, fmt = _setup(tiny_vlm, arch)
    tokenizer = processor.tokenizer
    image = vqa_examples(1)[0]["image"]
    example = {"id": "img0", "image": image, "caption": "red image"}  # a caption row: no question
    batch = VlmCollator(processor, fmt)([example])
    prompt_text = render_prompt(processor, None, fmt)
    assert fmt.caption_prompt in prompt_text and fmt.instruction not in prompt_text
    assert prompt_text == render_prompt(processor, fmt.caption_prompt, dataclasses.replace(fmt, instruction=""))
    prompt_ids = encode_prompt(processor, image, prompt_text)["input_ids"][0].tolist()
    target = tokenizer("red image" + fmt.end_of_turn, add_special_tokens=False)["input_ids"]
    assert batch["input_ids"][0].tolist() == prompt_ids + target
    assert batch["labels"][0].tolist() == [IGNORE_INDEX] * len(prompt_ids) + target


def test_qwen_sequence_is_the_chat_template_of_the_whole_conversation(tiny_vlm):
    processor, fmt = _setup(tiny_vlm, "qwen2_vl")
    example = vqa_examples(1)[0]
    batch = VlmCollator(processor, fmt)([example])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    conversation = processor.apply_chat_template(
        [{"role": "user",
          "content": [{"type": "image"}, {"type": "text", "text": "Is the image red? Answer briefly."}]},
         {"role": "assistant", "content": [{"type": "text", "text": "yes"}]}], tokenize=False)
    n_image = int((batch["input_ids"] == processor.image_token_id).sum())
    expected = conversation.replace("<|image_pad|>", "<|image_pad|>" * n_image).removesuffix("\n")
    assert text == expected
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    assert batch["mm_token_type_ids"].sum() == n_image  # answer tokens are text (type 0)


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava_next"])
def test_generation_batches_are_left_padded_without_labels(tiny_vlm, arch):
    processor, fmt = _setup(tiny_vlm, arch)
    examples = vqa_examples(3)
    batch = VlmCollator(processor, fmt, with_labels=False, padding_side="left")(examples)
    assert "labels" not in batch
    prompt = render_prompt(processor, "x", fmt)
    last_prompt_token = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"][-1]
    assert (batch["input_ids"][:, -1] == last_prompt_token).all()  # every prompt ends in the last column
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1
    for row, n in enumerate(lengths.tolist()):
        width = batch["input_ids"].shape[1]
        assert batch["attention_mask"][row].tolist() == [0] * (width - n) + [1] * n
    if arch == "llava_next":
        assert batch["pixel_values"].shape[:2] == (3, 5) and batch["image_sizes"].shape == (3, 2)
    else:
        assert batch["image_grid_thw"].shape == (3, 3)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
@pytest.mark.parametrize("with_labels, side", [(True, "right"), (False, "left")])
def test_one_processor_call_per_batch_equals_one_call_per_example(tiny_vlm, arch, with_labels, side):
    processor, fmt = _setup(tiny_vlm, arch)
    examples = vqa_examples(5)
    examples[3]["answer"] = "left lung"
    collate = VlmCollator(processor, fmt, with_labels=with_labels, padding_side=side)
    batch, singles = collate(examples), [collate([e]) for e in examples]
    assert set(batch) == set(singles[0])
    pad = {"input_ids": processor.tokenizer.pad_token_id, "labels": IGNORE_INDEX}
    for key, value in batch.items():
        if value.shape[0] == len(examples) and value.dim() == 2 and value.shape[1] == batch["input_ids"].shape[1]:
            for row, single in enumerate(singles):
                n = single[key].shape[1]
                real = value[row, :n] if side == "right" else value[row, value.shape[1] - n:]
                rest = value[row, n:] if side == "right" else value[row, : value.shape[1] - n]
                assert torch.equal(real, single[key][0]), (key, row)
                assert (rest == pad.get(key, 0)).all(), (key, row)
        else:  # per-image outputs: the examples' own, in order
            assert torch.equal(value, torch.cat([single[key] for single in singles])), key


def test_examples_come_from_the_parquet_and_the_image_cache(tmp_path):
    rows = vqa_rows(n_images=3, questions_per_image=2)
    rows.to_parquet(tmp_path / "train.parquet")
    build_image_cache(tmp_path / "train.parquet", 28, tmp_path / "images_28.train.npy", tmp_path / "ids.json")
    examples = load_examples(tmp_path / "train.parquet", tmp_path / "images_28.train.npy", tmp_path / "ids.json")
    assert len(examples) == 6
    first = examples[0]
    assert first["id"] == rows["question_id"][0] and first["answer"] == rows["answer"][0]
    assert first["image"].shape == (28, 28, 3) and first["image"].dtype.name == "uint8"
    with pytest.raises(KeyError, match="image cache"):
        rows2 = pd.concat([rows, rows.assign(image_id="unknown", question_id="z")])
        type(examples)(rows2, examples.images, examples.index)
