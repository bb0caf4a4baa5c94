"""Embedding similarity with a tiny random BERT loaded from a local save_pretrained directory."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from medvqa.evaluate.embedding import SentenceEncoder, cosine_rows, embedding_similarity

WORDS = ["yes", "no", "left", "right", "lung", "liver", "ct", "mri", "heart", "kidney"]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_bert")
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return str(path)


def test_encode_shape_and_padding_invariance(tiny_encoder_dir):
    encoder = SentenceEncoder(tiny_encoder_dir, batch_size=2)
    vectors = encoder.encode(["yes", "left lung", "right kidney liver", "yes"])
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    # "yes" in a padded batch and alone must give the same mean-pooled vector.
    np.testing.assert_allclose(vectors[0], encoder.encode(["yes"])[0], atol=1e-5)
    assert encoder.encode([]).shape == (0, 16)


def test_similarity_range_identity_and_best_reference(tiny_encoder_dir):
    encoder = SentenceEncoder(tiny_encoder_dir)
    preds = ["left lung", "ct", "heart"]
    refs = [["left lung"], ["mri", "ct"], ["kidney"]]
    sims = embedding_similarity(encoder, preds, refs)
    assert sims.shape == (3,)
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] == pytest.approx(1.0, abs=1e-5)
    assert -1.0 <= sims[2] <= 1.0


def test_cosine_rows_zero_vector():
    out = cosine_rows(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert out.tolist() == [0.0, -1.0]


def test_score_vqa_reports_the_named_encoder(tiny_encoder_dir, tmp_path):
    import pandas as pd

    from medvqa.evaluate.score import score_vqa
    from medvqa.evaluate.spec import ScoreSpec

    ids = ["q1", "q2"]
    data = pd.DataFrame({"question_id": ids, "answer": ["left lung", "yes"], "answer_type": ["open", "closed"]})
    data.to_parquet(tmp_path / "test.parquet")
    pd.DataFrame({"question_id": ids, "prediction": ["left lung", "no"]}).to_parquet(tmp_path / "pred.parquet")
    spec = ScoreSpec.from_mapping({"embedding_encoder": tiny_encoder_dir})
    out = score_vqa(tmp_path / "test.parquet", tmp_path / "pred.parquet", tmp_path / "m.json", spec)
    sim = out["embedding_similarity"]
    assert sim["n"] == 2 and -1.0 <= sim["value"] <= 1.0
    assert out["protocol"]["embedding_similarity"]["encoder"] == tiny_encoder_dir
