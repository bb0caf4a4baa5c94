"""The pretrained stage: every kind of tiny checkpoint, written from a split, loads like a hub id."""

import pytest

from builders import vqa_rows
from medvqa.spec import ConfigError
from medvqa.demo.tiny_checkpoints import TINY_KINDS, tiny_spec, write_tiny_checkpoint


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "train.parquet"
    vqa_rows(n_images=6, questions_per_image=3).to_parquet(path)
    return path


def load(kind, path):
    """The hub-id loading code of the family that reads ``kind``."""
    import transformers as tf

    if kind == "clip":
        return tf.CLIPModel.from_pretrained(path), tf.AutoProcessor.from_pretrained(path)
    if kind == "clip_gpt2":
        return tf.CLIPVisionModel.from_pretrained(path / "clip"), tf.GPT2LMHeadModel.from_pretrained(path / "gpt2")
    if kind.startswith("blip"):
        model = tf.BlipForQuestionAnswering if kind == "blip_vqa" else tf.BlipForConditionalGeneration
        return model.from_pretrained(path), tf.BlipProcessor.from_pretrained(path)
    return tf.AutoModelForImageTextToText.from_pretrained(path), tf.AutoProcessor.from_pretrained(path)


@pytest.mark.parametrize("kind", sorted(TINY_KINDS))
def test_every_kind_writes_a_loadable_checkpoint(kind, train_parquet, tmp_path):
    model = {"vocab_size": 300} if kind != "clip" else {"vocab_size": 300, "hidden_size": 32}
    out = write_tiny_checkpoint(kind, train_parquet, tmp_path / kind, image_size=32, seed=0, model=model)
    first, second = load(kind, out)
    assert first is not None and second is not None


def test_unknown_kinds_and_keys_are_named():
    with pytest.raises(ConfigError, match="kind='clip_llama'"):
        tiny_spec("clip_llama", {})
    with pytest.raises(ConfigError, match="projection_dim"):
        tiny_spec("qwen2_vl", {"projection_dim": 8})


def test_tokenizers_learn_the_text_of_every_listed_split(train_parquet, tmp_path):
    from transformers import AutoTokenizer

    from medvqa.demo.dataset import make_demo

    captions = tmp_path / "captions.parquet"
    make_demo(seed=0, n_images=40, task="caption", image_px=32).to_parquet(captions)
    word = " scintigram"  # in the demo captions, not in the VQA rows
    lengths = {}
    for name, paths in (("vqa", train_parquet), ("both", [train_parquet, captions])):
        out = write_tiny_checkpoint("clip_gpt2", paths, tmp_path / name, image_size=32, seed=0)
        lengths[name] = len(AutoTokenizer.from_pretrained(out / "gpt2").tokenize(word))
    assert lengths["both"] < lengths["vqa"]


_BUILD_ALL = """
import sys
from pathlib import Path
from medvqa.demo.tiny_checkpoints import TINY_KINDS, write_tiny_checkpoint
out = Path(sys.argv[2])
for kind in sorted(TINY_KINDS):
    model = {"vocab_size": 300} if kind != "clip" else {"vocab_size": 300, "hidden_size": 32}
    write_tiny_checkpoint(kind, sys.argv[1], out / kind, image_size=32, seed=0, model=model)
"""


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_cold_builds_of_every_kind_are_byte_identical(train_parquet, tmp_path):
    """The tokenizers trainers break ties in hash-map order (huggingface/tokenizers#1794); two
    processes with different hash seeds must still write the same files, weights included."""
    import os
    import subprocess
    import sys

    built = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"build{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", _BUILD_ALL, str(train_parquet), str(out)], env=env, check=True)
        built.append(_files(out))
    first, second = built
    assert sorted(first) == sorted(second)
    assert {f.split("/")[0] for f in first} == set(TINY_KINDS)
    assert any(f.endswith("tokenizer.json") for f in first) and any(f.endswith(".safetensors") for f in first)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
