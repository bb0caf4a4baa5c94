"""Baselines against hand-computed accuracies, predictions and nearest neighbours."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medvqa.data.baselines import (
    THUMBNAIL, majority_baseline, majority_predictions, most_frequent_caption, nearest, normalise_question,
    main, question_only_baseline, question_only_predictions, thumbnails, write_baseline,
)
from medvqa.data.images import build_image_cache, build_png_cache
from medvqa.evaluate.score import score_vqa
from medvqa.evaluate.spec import ScoreSpec


def rows(triples):
    return pd.DataFrame(triples, columns=["question", "answer", "answer_type"])


TRAIN = rows([
    ("Is it red?", "Yes", "closed"),
    ("is it  red", "yes.", "closed"),
    ("Is it red?", "no", "closed"),
    ("What colour is it?", "blue", "open"),
    ("What colour is it?", "Blue", "open"),
    ("What colour is it?", "red", "open"),
    ("Is it round?", "no", "closed"),
])
TEST = rows([
    ("IS IT RED?", "yes", "closed"),      # question-only: yes (2 of 3)  majority: blue / no tie → blue
    ("Is it red?", "No", "closed"),       # question-only: yes → wrong
    ("What colour is it?", "blue", "open"),  # question-only: blue → right; majority: right
    ("Is it round?", "no", "closed"),     # question-only: no → right
    ("How big is it?", "blue", "open"),   # unseen → falls back to the majority answer "blue"
])


def test_normalise_question():
    assert normalise_question("  Is it   RED ?! ") == "is it red"


def test_majority_baseline_hand_computed():
    # train answers: yes 2, no 2, blue 2, red 1 → three-way tie, alphabetically first is "blue"
    out = majority_baseline(TRAIN, TEST)
    assert out["prediction"] == "blue"
    assert out["overall"] == pytest.approx(2 / 5)
    assert out["closed"] == pytest.approx(0 / 3)
    assert out["open"] == pytest.approx(2 / 2)
    assert (out["n"], out["n_closed"], out["n_open"]) == (5, 3, 2)


def test_question_only_baseline_hand_computed():
    out = question_only_baseline(TRAIN, TEST)
    assert out["overall"] == pytest.approx(4 / 5)
    assert out["closed"] == pytest.approx(2 / 3)
    assert out["open"] == pytest.approx(2 / 2)
    assert out["unseen"] == pytest.approx(1 / 5)


def test_missing_answer_type_gives_none_and_extra_columns_are_ignored():
    closed_only = TEST[TEST["answer_type"] == "closed"].assign(image=b"x", question_id="q")
    out = question_only_baseline(TRAIN, closed_only)
    assert out["open"] is None and out["n_open"] == 0
    assert out["overall"] == pytest.approx(2 / 3)
    empty = question_only_baseline(TRAIN, TEST.iloc[:0])
    assert empty["overall"] is None and empty["unseen"] is None


# --- predictions of the baseline stage (scored like a model run) -----------------------------

def test_majority_predictions_and_confidence():
    out = majority_predictions(TRAIN, TEST)
    assert list(out["prediction"]) == ["blue"] * 5
    assert np.allclose(out["confidence"], 2 / 7)  # "blue" is 2 of the 7 train answers
    assert list(out.index) == list(TEST.index)


def test_question_only_predictions_and_confidence():
    out = question_only_predictions(TRAIN, TEST)
    assert list(out["prediction"]) == ["yes", "yes", "blue", "no", "blue"]
    # "is it red": yes 2 of 3; "what colour is it": blue 2 of 3; "is it round": no 1 of 1;
    # unseen "how big is it": the majority answer with its overall share 2 of 7.
    assert np.allclose(out["confidence"], [2 / 3, 2 / 3, 2 / 3, 1.0, 2 / 7])
    assert list(out["seen"]) == [True, True, True, True, False]


def split_files(tmp_path):
    train = TRAIN.assign(question_id=[f"t{i}" for i in range(len(TRAIN))], image_id="img")
    test = TEST.assign(question_id=[f"q{i}" for i in range(len(TEST))], image_id=[f"i{i}" for i in range(len(TEST))])
    train.to_parquet(tmp_path / "train.parquet", index=False)
    test.to_parquet(tmp_path / "test.parquet", index=False)
    return tmp_path / "train.parquet", tmp_path / "test.parquet"


@pytest.mark.parametrize("name, summary", [("baseline-majority", majority_baseline),
                                           ("baseline-question-only", question_only_baseline)])
def test_scored_baseline_run_equals_the_summary_baseline(tmp_path, name, summary):
    """The written predictions, scored by the scoring stage, give the summary.json accuracies."""
    train, test = split_files(tmp_path)
    frame = write_baseline(name, train, test, tmp_path / "pred.parquet")
    written = pd.read_parquet(tmp_path / "pred.parquet")
    assert list(written.columns) == ["question_id", "prediction", "confidence"]
    assert list(written["question_id"]) == [f"q{i}" for i in range(5)] and len(frame) == 5
    metrics = score_vqa(test, tmp_path / "pred.parquet", tmp_path / "m.json", ScoreSpec(bootstrap_resamples=1000))
    expected = summary(TRAIN, TEST)
    for kind in ("overall", "closed", "open"):
        block = metrics["accuracy"]["exact_match"][kind]
        assert block["value"] == pytest.approx(expected[kind])
        assert block["ci_low"] <= block["value"] <= block["ci_high"]


def test_command_line_writes_the_same_file(tmp_path):
    train, test = split_files(tmp_path)
    main(["--name", "baseline-question-only", "--train", str(train), "--split", str(test),
          "--out", str(tmp_path / "cli.parquet")])
    expected = write_baseline("baseline-question-only", train, test, tmp_path / "api.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cli.parquet"), expected.reset_index(drop=True))


def test_unknown_baseline_is_named(tmp_path):
    train, test = split_files(tmp_path)
    with pytest.raises(ValueError, match="unknown baseline 'baseline-oracle'"):
        write_baseline("baseline-oracle", train, test, tmp_path / "x.parquet")


# --- caption baselines ------------------------------------------------------------------------

def test_most_frequent_caption_collapses_whitespace_and_breaks_ties_alphabetically():
    assert most_frequent_caption(pd.Series(["b  scan", "b scan", "a scan", "c", "a scan "])) == "a scan"
    assert most_frequent_caption(pd.Series(["z", "y"])) == "y"


def texture(kind: str, size: int = 48) -> np.ndarray:
    """(size, size, 3) uint8 test patterns with structure (a flat image has none to compare)."""
    y, x = np.mgrid[0:size, 0:size] / size
    grey = {"horizontal": x, "vertical": y, "checker": ((x * 4).astype(int) + (y * 4).astype(int)) % 2,
            "ring": np.hypot(x - 0.5, y - 0.5), "flat": np.full_like(x, 0.5)}[kind]
    return np.repeat((255 * grey)[..., None], 3, axis=2).astype(np.uint8)


def test_thumbnails_are_centred_unit_vectors_and_flat_images_match_nothing():
    feats = thumbnails(np.stack([texture("horizontal"), texture("flat")]))
    assert feats.shape == (2, THUMBNAIL * THUMBNAIL)
    assert np.linalg.norm(feats[0]) == pytest.approx(1.0, abs=1e-5) and abs(feats[0].mean()) < 1e-5
    assert not feats[1].any()


def test_nearest_picks_the_most_similar_and_the_first_of_ties():
    train = thumbnails(np.stack([texture(k) for k in ("horizontal", "vertical", "checker", "ring")]))
    # A darker, lower-contrast copy of "vertical": centring and unit length remove both changes.
    dim = (texture("vertical").astype(float) * 0.5 + 20).astype(np.uint8)
    query = thumbnails(np.stack([dim, texture("ring"), texture("flat")]))
    index, similarity = nearest(train, query)
    assert list(index[:2]) == [1, 3]
    assert similarity[0] == pytest.approx(1.0, abs=1e-3)
    assert index[2] == 0 and similarity[2] == 0  # flat query: every similarity 0, first train image


def png(pixels: np.ndarray, fmt: str = "PNG", size: int | None = None) -> bytes:
    image = Image.fromarray(pixels)
    if size:
        image = image.resize((size, size))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def test_nearest_caption_run_from_the_image_caches(tmp_path):
    """A test image that is a resized JPEG of train image 'tr2' gets tr2's first caption."""
    kinds = ["horizontal", "vertical", "checker"]
    train = pd.DataFrame({"image_id": ["tr0", "tr1", "tr2", "tr2"],
                          "image": [png(texture(kinds[i])) for i in (0, 1, 2, 2)],
                          "caption": ["left to right", "top to bottom", "a chequered board", "second caption"]})
    test = pd.DataFrame({"image_id": ["te0", "te1"], "caption": ["x", "y"],
                         "image": [png(texture("checker"), "JPEG", 40), png(texture("horizontal"), "JPEG", 64)]})
    caches = []
    for split, frame in (("train", train), ("test", test)):
        frame.to_parquet(tmp_path / f"{split}.parquet", index=False)
        root = tmp_path / f"images_32.{split}"
        build_image_cache(tmp_path / f"{split}.parquet", 32, f"{root}.npy", f"{root}.ids.json")
        caches.append((f"{root}.npy", f"{root}.ids.json"))
    write_baseline("baseline-nearest-caption", tmp_path / "train.parquet", tmp_path / "test.parquet",
                   tmp_path / "cap.parquet", *caches)
    out = pd.read_parquet(tmp_path / "cap.parquet")
    # The same captions and similarities from png caches and (image_cache none) the splits themselves.
    build_png_cache(tmp_path / "train.parquet", 32, tmp_path / "train.png.arrow")
    build_png_cache(tmp_path / "test.parquet", 32, tmp_path / "test.png.arrow")
    for other in ([(tmp_path / f"{s}.png.arrow",) * 2 for s in ("train", "test")],
                  [(tmp_path / f"{s}.parquet",) * 2 for s in ("train", "test")]):
        write_baseline("baseline-nearest-caption", tmp_path / "train.parquet", tmp_path / "test.parquet",
                       tmp_path / "other.parquet", *other, image_size=32)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "other.parquet"), out)
    assert list(out["image_id"]) == ["te0", "te1"]
    assert list(out["neighbour_id"]) == ["tr2", "tr0"]
    assert list(out["generated"]) == ["a chequered board", "left to right"]
    assert (out["similarity"] > 0.9).all()
    # A derived view reads its base's caches, which may hold more images than the view keeps.
    view = tmp_path / "view"
    view.mkdir()
    train.iloc[[0, 1]].to_parquet(view / "train.parquet", index=False)
    test.iloc[[1]].to_parquet(view / "test.parquet", index=False)  # te1 only
    write_baseline("baseline-nearest-caption", view / "train.parquet", view / "test.parquet",
                   view / "cap.parquet", *caches)
    only = pd.read_parquet(view / "cap.parquet")
    assert list(only["image_id"]) == ["te1"] and list(only["neighbour_id"]) == ["tr0"]
    test.iloc[[0]].to_parquet(view / "test.parquet", index=False)  # te0: its best match tr2 is not in the view
    write_baseline("baseline-nearest-caption", view / "train.parquet", view / "test.parquet",
                   view / "cap.parquet", *caches)
    assert pd.read_parquet(view / "cap.parquet")["neighbour_id"].isin(["tr0", "tr1"]).all()
    with pytest.raises(ValueError, match="needs the train and split image caches"):
        write_baseline("baseline-nearest-caption", tmp_path / "train.parquet", tmp_path / "test.parquet",
                       tmp_path / "cap2.parquet")
    write_baseline("baseline-frequent-caption", tmp_path / "train.parquet", tmp_path / "test.parquet",
                   tmp_path / "freq.parquet")
    freq = pd.read_parquet(tmp_path / "freq.parquet")
    # four captions, each once: the alphabetically first wins the tie
    assert list(freq["generated"]) == ["a chequered board"] * 2 and list(freq["image_id"]) == ["te0", "te1"]
