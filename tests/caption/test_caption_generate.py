"""Caption generation: output table, batched = one at a time, BLIP prefix, fine-tuned run directories."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from medvqa.data.images import load_image_cache
from medvqa.inference.caption import CaptionSpec, caption_images, load_captioner, parts_dir, run_captioning
from medvqa.io import write_json
from medvqa.spec import ConfigError

COLUMNS = ["image_id", "caption", "generated", "model", "seconds_per_image", "chunk"]


def _run(split, out, **spec):
    spec = CaptionSpec.from_mapping({"max_new_tokens": 8, **spec})
    run = run_captioning(spec, split["data"], split["images"], split["image_ids"], out, model_name="m")
    return run, pd.read_parquet(out)


def _cache_images(split) -> list[np.ndarray]:
    cache, row_of = load_image_cache(split["images"], split["image_ids"])
    ids = list(dict.fromkeys(split["rows"]["image_id"]))
    return [np.array(cache[row_of[i]]) for i in ids]


def test_one_row_per_unique_image_with_the_documented_columns(caption_split, sharp_blip_dir, tmp_path):
    out = tmp_path / "test.parquet"
    run, frame = _run(caption_split, out, kind="blip", checkpoint=str(sharp_blip_dir), batch_size=3, chunk_size=4)
    rows = caption_split["rows"]
    assert list(frame.columns) == COLUMNS
    assert frame["image_id"].tolist() == list(dict.fromkeys(rows["image_id"]))  # split order, no duplicate
    assert len(frame) == rows["image_id"].nunique() == len(rows) - 1
    first_reference = rows.drop_duplicates("image_id").set_index("image_id")["caption"]
    assert frame["caption"].tolist() == first_reference.loc[frame["image_id"]].tolist()
    assert (frame["model"] == "m").all() and (frame["seconds_per_image"] > 0).all()
    assert frame["chunk"].tolist() == [0] * 4 + [1] * 4 + [2] * 2
    assert frame["chunk"].dtype == np.int32
    # seconds_per_image is per batch: equal within a batch of 3 (rows 0-2), per chunk batches restart
    assert frame["seconds_per_image"].iloc[0] == frame["seconds_per_image"].iloc[2]
    assert frame["generated"].map(lambda t: isinstance(t, str) and t != "").all()
    assert frame["generated"].nunique() > 3  # image-dependent captions: the comparisons below mean something
    assert run.complete and run.generated == 10 and run.reused == 0 and run.chunks_written == 3
    assert not parts_dir(out).exists()
    # image_cache none: the split parquet's own images, decoded and resized on read, give the same captions
    none = {**caption_split, "images": caption_split["data"], "image_ids": caption_split["data"]}
    spec = CaptionSpec.from_mapping({"max_new_tokens": 8, "kind": "blip", "checkpoint": str(sharp_blip_dir),
                                     "batch_size": 3, "chunk_size": 4})
    size = load_image_cache(caption_split["images"], caption_split["image_ids"])[0].shape[1]
    run_captioning(spec, none["data"], none["images"], none["image_ids"], tmp_path / "none.parquet", model_name="m",
                   image_size=size)
    columns = ["image_id", "caption", "generated"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "none.parquet")[columns], frame[columns])


@pytest.mark.parametrize("num_beams", [1, 2])
def test_blip_batched_equals_one_at_a_time(caption_split, sharp_blip_dir, num_beams):
    spec = CaptionSpec.from_mapping({"kind": "blip", "checkpoint": str(sharp_blip_dir), "max_new_tokens": 8,
                                     "num_beams": num_beams})
    captioner = load_captioner(spec)
    images = _cache_images(caption_split)
    batched, _ = caption_images(captioner, images, batch_size=5)
    single, _ = caption_images(captioner, images, batch_size=1)
    assert batched == single
    assert len(set(single)) > 3


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava", "qwen3_vl", "gemma3", "idefics3"])
def test_vlm_batched_equals_one_at_a_time(caption_split, tiny_vlm, tmp_path, arch):
    common = dict(kind="vlm", checkpoint=str(tiny_vlm(arch)), chunk_size=10)
    _, batched = _run(caption_split, tmp_path / "b.parquet", batch_size=4, **common)
    _, single = _run(caption_split, tmp_path / "s.parquet", batch_size=1, **common)
    assert batched["generated"].tolist() == single["generated"].tolist()
    assert len(set(single["generated"])) > 1 and (single["generated"] != "").all()


def test_blip_prefix_is_given_to_the_decoder_and_cut_from_the_caption(caption_split, sharp_blip_dir):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    prefix = "axial mri slice of"
    captioner = load_captioner(CaptionSpec.from_mapping(
        {"kind": "blip", "checkpoint": str(sharp_blip_dir), "prompt": prefix, "max_new_tokens": 6}))
    image = _cache_images(caption_split)[:1]
    ours = captioner.generate(image)
    # The reference: Hugging Face's own conditional captioning, decoded whole.
    processor = BlipProcessor.from_pretrained(sharp_blip_dir)
    model = BlipForConditionalGeneration.from_pretrained(sharp_blip_dir).eval()
    inputs = processor(images=image, text=prefix, return_tensors="pt", do_resize=False)
    whole = processor.decode(model.generate(**inputs, max_new_tokens=6, num_beams=1, do_sample=False)[0],
                             skip_special_tokens=True)
    assert whole.startswith(prefix) and ours[0] and ours[0] == whole[len(prefix):].strip()


def _perturb(module: torch.nn.Module, names: str, scale: float) -> None:
    with torch.no_grad():
        for name, param in module.named_parameters():
            if names in name:
                param.add_(scale * torch.randn_like(param))


def _write_run(run_dir, family: str, args: dict, module: torch.nn.Module, trainable_only: bool) -> None:
    """A run directory as the training engine leaves it: best weights + state.json (written last)."""
    from medvqa.models.checkpoint import STATE, WEIGHTS, save_weights

    save_weights(module, run_dir / WEIGHTS, trainable_only)
    write_json({"family": family, "args": args}, run_dir / STATE)


def test_blip_fine_tuned_run_directory(caption_split, sharp_blip_dir, tmp_path):
    from transformers import BlipProcessor

    from medvqa.models import blip
    from medvqa.models.common import DataInfo

    torch.manual_seed(0)
    args = blip.builder_args({"checkpoint": str(sharp_blip_dir), "task": "caption"}, DataInfo(0, 32))
    tuned = blip.build(args, True)
    _perturb(tuned, "text_decoder.cls", 0.5)  # "training" changed the LM head
    _write_run(tmp_path / "run", "blip", args, tuned, trainable_only=False)
    # The same weights as a plain checkpoint directory: zero-shot from it must give the same captions.
    tuned.hf.save_pretrained(tmp_path / "tuned_ckpt")
    BlipProcessor.from_pretrained(sharp_blip_dir).save_pretrained(tmp_path / "tuned_ckpt")

    spec = CaptionSpec.from_mapping({"kind": "blip", "max_new_tokens": 8})
    images = _cache_images(caption_split)
    from_run, _ = caption_images(load_captioner(spec, tmp_path / "run"), images, 4)
    from_ckpt, _ = caption_images(load_captioner(dataclasses.replace(spec, checkpoint=str(tmp_path / "tuned_ckpt"))),
                                  images, 4)
    base, _ = caption_images(load_captioner(dataclasses.replace(spec, checkpoint=str(sharp_blip_dir))), images, 4)
    assert from_run == from_ckpt
    assert from_run != base


def test_vlm_run_directories_lora_and_zero_shot(caption_split, tiny_vlm, tmp_path):
    from medvqa.models import vlm_sft
    from medvqa.models.checkpoint import STATE
    from medvqa.models.common import DataInfo

    checkpoint = str(tiny_vlm("qwen2_vl"))
    torch.manual_seed(0)
    args = vlm_sft.builder_args({"checkpoint": checkpoint, "finetune": True}, DataInfo(0, 32))
    model = vlm_sft.build(args, True)
    _perturb(model, "lora_B", 2.0)  # LoRA B starts at zero: make the adapter change the model
    _write_run(tmp_path / "lora", "vlm_sft", args, model, trainable_only=True)
    zero_shot = vlm_sft.builder_args({"checkpoint": checkpoint, "finetune": False}, DataInfo(0, 32))
    write_json({"family": "vlm_sft", "args": zero_shot}, tmp_path / "zero_shot" / STATE)  # no weights

    spec = CaptionSpec.from_mapping({"kind": "vlm", "max_new_tokens": 8})
    images = _cache_images(caption_split)
    tuned, _ = caption_images(load_captioner(spec, tmp_path / "lora"), images, 5)
    untuned, _ = caption_images(load_captioner(spec, tmp_path / "zero_shot"), images, 5)
    base, _ = caption_images(load_captioner(dataclasses.replace(spec, checkpoint=checkpoint)), images, 5)
    assert untuned == base
    assert tuned != base
    single, _ = caption_images(load_captioner(spec, tmp_path / "lora"), images, 1)
    assert tuned == single


def test_wrong_run_family_and_missing_checkpoint_fail_clearly(tmp_path):
    write_json({"family": "cnn_lstm", "args": {}}, tmp_path / "state.json")
    with pytest.raises(ConfigError, match="'cnn_lstm' run"):
        load_captioner(CaptionSpec.from_mapping({"kind": "blip"}), tmp_path)
    with pytest.raises(ConfigError, match="checkpoint"):
        load_captioner(CaptionSpec.from_mapping({"kind": "vlm"}))


@pytest.mark.parametrize("mapping, message", [
    ({"kind": "gpt"}, "kind"),
    ({"kind": "vlm", "do_sample": True, "num_beams": 2}, "do_sample"),
    ({"kind": "blip", "max_pixels": 50176}, "max_pixels is not a setting of the blip captioner"),
    ({"kind": "flamingo", "num_beams": 2}, "num_beams is not a setting of the flamingo captioner"),
    ({"kind": "flamingo", "prompt": "A photo of"}, "prompt is not a setting of the flamingo captioner"),
    ({"kind": "blip", "chunk_size": 0}, "chunk_size"),
    ({"kind": "blip", "beams": 2}, "unknown key"),
])
def test_spec_rejects_bad_settings(mapping, message):
    with pytest.raises(ConfigError, match=message):
        CaptionSpec.from_mapping(mapping)


def test_caption_kinds_match_the_torch_free_spec():
    from medvqa.families import FAMILIES
    from medvqa.inference.caption_models import CAPTION_KINDS
    from medvqa.models.specs import CAPTION_KIND_NAMES

    assert tuple(CAPTION_KINDS) == CAPTION_KIND_NAMES
    captioning = {family: facts.caption_kind for family, facts in FAMILIES.items() if facts.caption_kind}
    assert {kind.run_family: name for name, kind in CAPTION_KINDS.items()} == captioning
