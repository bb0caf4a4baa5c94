"""The blip family (VQA and captioning) on tiny BLIPs written by medvqa.demo.tiny_hf."""

import pytest
import torch
from safetensors.torch import load_model, save_model
from torch.nn import functional as F
from transformers import BlipProcessor

from builders import vqa_rows
from medvqa.data.answers import write_answers
from medvqa.data.images import build_image_cache
from medvqa.families import ModelConfig
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.models import blip
from medvqa.models.batch import SplitPaths
from medvqa.models.common import DataInfo, PredictRun
from medvqa.models.generation import GenerationSpec
from medvqa.models.generative import IGNORE_INDEX, TextImageSplit
from medvqa.training.train import TrainPaths, run_training


def make(blip_dirs, task, checkpoint=None, **overrides):
    config = {"checkpoint": str(checkpoint or blip_dirs[task]), "task": task, **overrides}
    args = blip.builder_args(config, DataInfo(n_answers=4, image_size=32))
    return args, blip.build(args, load_pretrained=True), blip.load_tokenizer(args)


def batch_of(split, tokenizer, args, rows=None):
    rows = range(len(split)) if rows is None else rows
    return blip.collate([split[i] for i in rows], tokenizer, args)


def test_vqa_batch_follows_the_decoder_input_ids_and_labels_convention(blip_dirs):
    args, model, tok = make(blip_dirs, "vqa")
    image = torch.zeros(32, 32, 3, dtype=torch.uint8)
    examples = [{"id": "a", "image": image, "question": "Is the image red?", "answer": "Yes"},
                {"id": "b", "image": image, "question": "What colour?", "answer": "dark red"}]
    batch = blip.collate(examples, tok, args)
    ids = tok.get_vocab()
    dec, sep, pad = ids["[DEC]"], ids["[SEP]"], ids["[PAD]"]
    yes = tok("yes", add_special_tokens=False)["input_ids"]
    dark_red = tok("dark red", add_special_tokens=False)["input_ids"]
    width = 2 + max(len(yes), len(dark_red))
    padding = [pad] * (width - 2 - len(yes))
    assert batch["decoder_input_ids"].tolist() == [[dec, *yes, sep, *padding], [dec, *dark_red, sep]]
    assert batch["labels"].tolist() == [[dec, *yes, sep, *[IGNORE_INDEX] * len(padding)], [dec, *dark_red, sep]]
    assert batch["decoder_attention_mask"].tolist() == [[1] * (2 + len(yes)) + [0] * len(padding), [1] * width]
    assert batch["input_ids"][:, 0].tolist() == [ids["[CLS]"]] * 2  # questions keep the processor's tokens
    assert dec == model.hf.config.text_config.bos_token_id

    # The decoder shifts internally: its loss is logits[:, :-1] against labels[:, 1:].
    model.eval()
    with torch.no_grad():
        logits = blip.decoder_logits(model, batch)
        expected = F.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX
        )
        assert blip.loss(model, batch) == pytest.approx(float(expected), rel=1e-5)
        # The gotcha: labels alone become decoder_input_ids, and -100 is no token id.
        with pytest.raises(IndexError):
            model.hf(input_ids=batch["input_ids"], pixel_values=model.pixel_values(batch["images"]),
                     attention_mask=batch["attention_mask"], labels=batch["labels"])


def test_caption_batch_starts_the_decoder_with_its_bos_token(blip_dirs, caption_split):
    args, model, tok = make(blip_dirs, "caption")
    batch = batch_of(caption_split, tok, args, rows=[0])
    caption = tok(caption_split[0]["caption"], add_special_tokens=False)["input_ids"]
    ids = tok.get_vocab()
    assert batch["decoder_input_ids"].tolist() == [[ids["[DEC]"], *caption, ids["[SEP]"]]]
    assert batch["labels"].tolist() == batch["decoder_input_ids"].tolist()
    assert "input_ids" not in batch


@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_finetune_lowers_the_loss(blip_dirs, vqa_split, caption_split, train_steps, task):
    args, model, tok = make(blip_dirs, task, freeze_vision=task == "caption")
    split = vqa_split if task == "vqa" else caption_split
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = train_steps(model, blip.loss, batch_of(split, tok, args), steps=30, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    after = dict(model.named_parameters())
    vision = {n for n in before if n.startswith("hf.vision_model.")}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed.isdisjoint(vision) if task == "caption" else vision & changed
    assert any(n.startswith("hf.text_decoder.") for n in changed)


@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_save_and_reload_give_identical_logits(blip_dirs, vqa_split, caption_split, train_steps, tmp_path, task):
    args, model, tok = make(blip_dirs, task)
    split = vqa_split if task == "vqa" else caption_split
    batch = batch_of(split, tok, args, rows=[0, 1, 2])
    train_steps(model, blip.loss, batch, steps=2, lr=1e-3)
    save_model(model, str(tmp_path / "weights.safetensors"))  # how the training engine saves
    rebuilt = blip.build(args, load_pretrained=False)
    load_model(rebuilt, str(tmp_path / "weights.safetensors"), strict=True)
    model.hf.save_pretrained(tmp_path / "hf")  # and as a checkpoint from_pretrained can load
    BlipProcessor.from_pretrained(blip_dirs[task]).save_pretrained(tmp_path / "hf")
    _, reloaded, _ = make(blip_dirs, task, checkpoint=tmp_path / "hf")
    with torch.no_grad():
        logits = [blip.decoder_logits(m.eval(), batch) for m in (model, rebuilt, reloaded)]
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_padded_question_tokens_are_not_attended_by_the_decoder(blip_dirs, vqa_split):
    """transformers 5.x drops the cross-attention mask; ``build`` restores it (blip.py)."""
    args, model, tok = make(blip_dirs, "vqa")
    model.eval()
    padded = batch_of(vqa_split, tok, args, rows=[0, 1])  # "Is the image red?" is the shorter question
    alone = batch_of(vqa_split, tok, args, rows=[0])
    assert padded["attention_mask"][0].tolist()[-1] == 0
    with torch.no_grad():
        # Equal up to float rounding of the batched matmuls; unmasked padding moved logits by ~5e-4.
        torch.testing.assert_close(blip.decoder_logits(model, padded)[0], blip.decoder_logits(model, alone)[0],
                                   rtol=0, atol=1e-5)


def test_batched_generation_equals_one_at_a_time(blip_dirs, vqa_split, train_steps):
    args, model, tok = make(blip_dirs, "vqa")
    train_steps(model, blip.loss, batch_of(vqa_split, tok, args), steps=30, lr=3e-3)
    spec = GenerationSpec(max_new_tokens=4)
    rows = [0, 1, 2, 4]  # questions of different lengths: padded in the batch
    together = blip.predict(model, batch_of(vqa_split, tok, args, rows), tok, spec)
    alone = [blip.predict(model, batch_of(vqa_split, tok, args, [i]), tok, spec)[0] for i in rows]
    for a, b in zip(together, alone):
        assert a["prediction"] == b["prediction"]
        for key in ("answer_prob_product", "answer_prob_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7)
            assert 0 < a[key] <= 1
    assert {r["prediction"] for r in together} <= {"yes", "no", "red", "blue"}


def test_predictions_carry_samples(blip_dirs, caption_split):
    args, model, tok = make(blip_dirs, "caption")
    torch.manual_seed(0)
    out = blip.predict(model, batch_of(caption_split, tok, args, rows=[0, 1]), tok,
                       GenerationSpec(max_new_tokens=5, num_samples=3))
    assert [len(r["samples"]) for r in out] == [3, 3]
    assert all(isinstance(r["prediction"], str) and r["answer_prob_product"] <= r["answer_prob_mean"] for r in out)


def test_an_entry_without_train_block_answers_with_the_checkpoint_as_loaded(blip_dirs, tmp_path):
    """Zero-shot BLIP VQA (e.g. Salesforce/blip-vqa-base, already VQA-tuned): no train: block → a run
    directory without weights whose answers are those of the checkpoint itself."""
    split = SplitPaths(tmp_path / "test.parquet", tmp_path / "images.npy", tmp_path / "images.ids.json")
    vqa_rows(n_images=3, questions_per_image=2).to_parquet(split.parquet)
    build_image_cache(split.parquet, 32, split.images, split.image_ids)
    write_answers(split.parquet, [], tmp_path / "answers.json")
    entry = ModelConfig.from_mapping({"family": "blip", "model": {"checkpoint": str(blip_dirs["vqa"])},
                                      "generate": {"max_new_tokens": 4}})
    state = run_training(entry, TrainPaths(split, split, tmp_path / "answers.json"), tmp_path / "run", seed=0)
    assert state["epoch"] == 0 and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.csv", "state.json"]
    frame = run_prediction(tmp_path / "run", split, tmp_path / "p.parquet", PredictSpec(), generation=entry.generation())
    args, model, _ = make(blip_dirs, "vqa")
    data = TextImageSplit(split.parquet, split.images, split.image_ids)
    expected, _ = blip.predict_split(model.eval(), args, [], data, PredictRun(torch.device("cpu"),
                                                                                 generation=entry.generation()))
    assert frame["prediction"].tolist() == expected["prediction"].tolist()
    assert frame["confidence"].tolist() == pytest.approx(expected["confidence"].tolist(), abs=1e-6)
