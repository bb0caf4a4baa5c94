"""Image cache (shape, dtype, pixels, order) and pre-tokenisation (words and hf kinds)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from builders import png_bytes, vqa_rows
from medvqa.data.answers import build_vocabulary, normalise_answer
from medvqa.data.images import build_image_cache, load_image_cache
from medvqa.data.summary import image_storage
from medvqa.data.tokens import TokenizerSpec, build_word_vocab, tokenize_split
from medvqa.spec import ConfigError


def test_image_cache_holds_each_unique_image_once_with_its_pixels(tmp_path):
    rows = vqa_rows(n_images=5, questions_per_image=3)
    rows.loc[rows["image_id"] == rows.at[0, "image_id"], "image"] = png_bytes((10, 250, 40), size=(80, 20))
    rows.to_parquet(tmp_path / "train.parquet")
    n = build_image_cache(tmp_path / "train.parquet", 16, tmp_path / "c.npy", tmp_path / "c.ids.json", threads=2)
    cache, index = load_image_cache(tmp_path / "c.npy", tmp_path / "c.ids.json")
    assert n == 5 and cache.shape == (5, 16, 16, 3) and cache.dtype == np.uint8
    assert isinstance(cache, np.memmap)
    assert list(index) == list(rows["image_id"].drop_duplicates())
    assert np.all(np.abs(cache[index[rows.at[0, "image_id"]]].astype(int) - (10, 250, 40)) <= 1)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_cache_read_in_small_batches_equals_one_batch_and_summary_states_its_disk_cost(tmp_path):
    rows = vqa_rows(n_images=7, questions_per_image=3)
    rows.to_parquet(tmp_path / "train.parquet", row_group_size=4)
    for batch_rows in (1, 5, 1000):
        build_image_cache(tmp_path / "train.parquet", 12, tmp_path / f"{batch_rows}.npy", tmp_path / "ids.json",
                          threads=2, batch_rows=batch_rows)
    one = (tmp_path / "1000.npy").read_bytes()
    assert (tmp_path / "1.npy").read_bytes() == one == (tmp_path / "5.npy").read_bytes()
    storage = image_storage({"train": tmp_path / "train.parquet"}, 12)["splits"]["train"]
    distinct = rows.drop_duplicates("image_id")["image"]
    assert storage["images"] == 7 and storage["encoded_bytes"] == sum(map(len, distinct))
    assert storage["raw_cache_bytes"] == len(one)  # what the image_cache rule writes


def test_word_tokens_and_vocab(tmp_path):
    rows = vqa_rows()
    rows.to_parquet(tmp_path / "train.parquet")
    spec = TokenizerSpec(kind="words", max_length=3)
    vocab = build_word_vocab(tmp_path / "train.parquet", spec, tmp_path / "v.json")
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"] and "red" in vocab["tokens"]
    test = rows.assign(question="Is the zebra red?")
    test.to_parquet(tmp_path / "test.parquet")
    tokenize_split(spec, tmp_path / "test.parquet", tmp_path / "t.parquet", tmp_path / "v.json")
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.schema.field("input_ids").type.value_type.bit_width == 32
    first = table.to_pandas().iloc[0]
    words = vocab["tokens"]
    assert [words[i] for i in first["input_ids"]] == ["is", "the", "<unk>"]  # truncated to 3
    assert first["question_id"] == rows.at[0, "question_id"]


def test_hf_tokens_load_through_autotokenizer_from_a_local_directory(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rows = vqa_rows()
    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(rows["question"], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]")
    tok.save_pretrained(tmp_path / "tok")
    rows.to_parquet(tmp_path / "train.parquet")
    spec = TokenizerSpec(kind="hf", path=str(tmp_path / "tok"), max_length=8)
    tokenize_split(spec, tmp_path / "train.parquet", tmp_path / "t.parquet")
    got = pd.read_parquet(tmp_path / "t.parquet")
    assert list(got["input_ids"].iloc[0]) == tok(rows.at[0, "question"])["input_ids"]
    assert len(got) == len(rows)


def test_hf_tokenizer_needs_a_path():
    with pytest.raises(ConfigError, match="path"):
        TokenizerSpec.from_mapping({"kind": "hf"}, where="tokenizers.clip")


def test_answer_vocabulary_orders_by_frequency_and_maps_types():
    train = pd.DataFrame(
        {"answer": ["Yes", "yes.", "no", "Left lung", "left  lung", "left lung"], "answer_type": ["closed"] * 3 + ["open"] * 3}
    )
    vocab = build_vocabulary(train, {"test": pd.DataFrame({"answer": ["YES", "heart"]})})
    assert vocab["answers"] == ["left lung", "yes", "no"]
    assert vocab["answer_type"] == {"left lung": "open", "yes": "closed", "no": "closed"}
    assert vocab["coverage"]["test"] == 0.5
    assert normalise_answer("  Left   Lung! ") == "left lung"
