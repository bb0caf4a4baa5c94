"""Tiny checkpoints load through the same from_pretrained calls as hub ids; shared helpers."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor, AutoProcessor, AutoTokenizer, BlipForConditionalGeneration, BlipForQuestionAnswering,
    CLIPVisionModel, GPT2LMHeadModel,
)

from medvqa.demo.pretrained import CLIP_MEAN
from medvqa.demo.tiny_hf import write_tiny_blip
from medvqa.models import blip
from medvqa.models.augment import to_float
from medvqa.models.common import DataInfo, Normalise
from medvqa.models.generation import answer_lengths, sequence_probabilities
from medvqa.models.generative import image_statistics, pad_left
from medvqa.spec import ConfigError


def test_clip_gpt2_directories_load_like_hub_ids(clip_gpt2):
    vision = CLIPVisionModel.from_pretrained(clip_gpt2["vision"])
    lm = GPT2LMHeadModel.from_pretrained(clip_gpt2["lm"])
    tok = AutoTokenizer.from_pretrained(clip_gpt2["lm"])
    assert vision.config.image_size == 32 and lm.config.n_layer == 2
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token is None  # as the real "gpt2"
    assert len(tok) == lm.config.vocab_size
    # Byte-level BPE: any text, even characters never seen in training, round-trips exactly.
    for text in ("Question: Is the image red? Answer: yes", " Größe → 5 mm²"):
        assert tok.decode(tok(text)["input_ids"]) == text
    stats = image_statistics(AutoImageProcessor.from_pretrained(clip_gpt2["vision"]))
    assert stats == {"image_mean": list(CLIP_MEAN), "image_std": stats["image_std"], "image_size": 32}


def test_blip_directories_load_like_hub_ids(blip_dirs):
    vqa = BlipForQuestionAnswering.from_pretrained(blip_dirs["vqa"])
    caption = BlipForConditionalGeneration.from_pretrained(blip_dirs["caption"])
    processor = AutoProcessor.from_pretrained(blip_dirs["vqa"])
    vocab = processor.tokenizer.get_vocab()
    for model in (vqa, caption):
        text = model.config.text_config
        special = (text.bos_token_id, text.sep_token_id, text.pad_token_id)
        assert special == (vocab["[DEC]"], vocab["[SEP]"], vocab["[PAD]"])
        assert text.vocab_size == len(processor.tokenizer)
    assert processor.tokenizer("What colour?")["input_ids"][0] == vocab["[CLS]"]
    with pytest.raises(ConfigError, match="task"):
        write_tiny_blip("unused", ["a"], seed=0, task="retrieval")


def test_tensor_normalisation_matches_the_processor(blip_dirs, vqa_split):
    """The models standardise cached uint8 tensors themselves; the result is the processor's."""
    processor = AutoProcessor.from_pretrained(blip_dirs["vqa"])
    images = torch.stack([vqa_split[i]["image"] for i in (0, 3)])
    expected = processor(images=[Image.fromarray(im.numpy()) for im in images], return_tensors="pt")["pixel_values"]
    args = blip.builder_args({"checkpoint": str(blip_dirs["vqa"])}, DataInfo(n_answers=2, image_size=32))
    ours = Normalise(args["image_mean"], args["image_std"], args["image_size"])(to_float(images))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_text_image_split_reads_the_cache(vqa_split, caption_split):
    item = vqa_split[4]
    assert set(item) == {"id", "image", "question", "answer"} and item["image"].dtype == torch.uint8
    assert item["image"].shape == (32, 32, 3) and vqa_split.task == "vqa" and len(vqa_split) == 18
    assert set(caption_split[0]) == {"id", "image", "caption"} and caption_split.task == "caption"
    # Questions on the same image share its cache row.
    assert torch.equal(vqa_split[3]["image"], vqa_split[5]["image"])


def test_pad_left_and_answer_lengths():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    tokens = torch.tensor([[4, 2, 9, 2], [4, 4, 4, 4], [2, 2, 2, 2]])
    assert answer_lengths(tokens, [2]).tolist() == [2, 4, 1]


def test_sequence_probabilities_are_the_product_and_mean_of_the_kept_tokens():
    probs = torch.tensor([[0.5, 0.8, 0.1], [0.9, 0.3, 0.3], [0.7, 0.7, 0.7]])
    product, mean = sequence_probabilities(probs, torch.tensor([2, 3, 0]))
    assert product == pytest.approx([0.4, 0.081, 0.0])
    assert mean == pytest.approx([0.65, 0.5, 0.0])
    assert np.all(np.asarray(product) <= np.asarray(mean) + 1e-12)


def test_bpe_ties_break_by_the_smaller_pair_and_wordpiece_marks_inner_pieces():
    from medvqa.demo.tiny_bpe import learn_bpe, learn_wordpiece

    # "ab" and "cd" occur equally often: the tie goes to ("a", "b"), whatever the hash seed.
    vocab, merges = learn_bpe({"cd": 2, "ab": 2}, vocab_size=6, specials=["<s>"])
    assert merges == [("a", "b")]
    assert list(vocab) == ["<s>", "a", "b", "c", "d", "ab"]  # 6 tokens: "cd" does not fit
    vocab, merges = learn_bpe({"cd": 2, "ab": 2, "abd": 3}, vocab_size=7, suffix="</w>")
    # pairs: (a,b) 3 and (b,d</w>) 3 tie → "ab"; then (ab,d</w>) 3 beats (a,b</w>) 2 and (c,d</w>) 2
    assert merges == [("a", "b"), ("ab", "d</w>")] and list(vocab)[-2:] == ["ab", "abd</w>"]
    # (a,##b) 2 → "ab"; then (##a,##b) 1 ties (ab,##a) 1 and "##a" < "ab" → "##ab"; then "abab"
    wordpiece = learn_wordpiece({"abab": 1, "ab": 1}, vocab_size=10, specials=["[PAD]"])
    assert list(wordpiece) == ["[PAD]", "##a", "##b", "a", "ab", "##ab", "abab"]
