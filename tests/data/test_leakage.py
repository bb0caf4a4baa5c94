"""Leakage audit: planted exact and near duplicates within and across splits are all found, and
distinct photographs (two of them with identical file sizes) never pair."""

import io
import json
import logging

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from medvqa.data.leakage import LeakageSpec, audit, fingerprint, near_pairs, normalise_question
from medvqa.spec import ConfigError

SIDE = 128


def photo(name: str) -> Image.Image:
    """A shipped scikit-image photograph (no network), as a 128x128 RGB image."""
    pixels = getattr(skimage.data, name)()
    return Image.fromarray(pixels).convert("RGB").resize((SIDE, SIDE), Image.Resampling.LANCZOS)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def crop_slightly(img: Image.Image) -> Image.Image:
    """Lose one pixel on every side (under 1 % of the width)."""
    return img.crop((1, 1, SIDE - 1, SIDE - 1))


# (split, image_id, encoded image); comments name the planted pair each row belongs to.
def planted_images() -> list[tuple[str, str, bytes]]:
    camera, astronaut, coffee, chelsea = photo("camera"), photo("astronaut"), photo("coffee"), photo("chelsea")
    rocket, retina, histology = photo("rocket"), photo("retina"), photo("immunohistochemistry")
    return [
        ("train", "t-camera", encode(camera, "PNG")),
        ("train", "t-camera-tiff", encode(camera, "TIFF")),  # exact, within train (other format, name)
        ("train", "t-astronaut", encode(astronaut, "PNG")),
        ("train", "t-coffee", encode(coffee, "PNG")),
        ("train", "t-chelsea", encode(chelsea, "PNG")),
        ("train", "t-moon", encode(photo("moon"), "BMP")),  # same file size as x-coins, other pixels
        ("train", "t-brick", encode(photo("brick"), "PNG")),
        ("val", "v-astronaut-jpeg", encode(astronaut, "JPEG", quality=75)),  # near, train-val (recompressed)
        ("val", "v-rocket", encode(rocket, "PNG")),
        ("val", "v-colorwheel", encode(photo("colorwheel"), "PNG")),
        ("test", "x-camera-webp", encode(camera, "WEBP", lossless=True)),  # exact, train-test (lossless)
        ("test", "x-coffee-small", encode(coffee.resize((SIDE // 2, SIDE // 2)), "PNG")),  # near: resized
        ("test", "x-chelsea-crop", encode(crop_slightly(chelsea), "PNG")),  # near: slightly cropped
        ("test", "x-rocket", encode(rocket, "PNG")),  # exact, val-test
        ("test", "x-retina", encode(retina, "PNG")),
        ("test", "x-retina-jpeg", encode(retina, "JPEG", quality=85)),  # near, within test
        ("test", "x-histology", encode(histology, "PNG")),
        ("test", "x-coins", encode(photo("coins"), "BMP")),
    ]


EXPECTED_PAIRS = {
    ("train", "t-camera", "train", "t-camera-tiff", "exact"),
    ("train", "t-camera", "test", "x-camera-webp", "exact"),
    ("train", "t-camera-tiff", "test", "x-camera-webp", "exact"),
    ("train", "t-astronaut", "val", "v-astronaut-jpeg", "near"),
    ("train", "t-coffee", "test", "x-coffee-small", "near"),
    ("train", "t-chelsea", "test", "x-chelsea-crop", "near"),
    ("val", "v-rocket", "test", "x-rocket", "exact"),
    ("test", "x-retina", "test", "x-retina-jpeg", "near"),
}


def question_rows(split: str, image_id: str, image: bytes) -> list[dict]:
    """Two questions per image. On test images, the first repeats the question asked of the
    train twin with the same answer, the second asks it with another answer."""
    subject = image_id.split("-")[1]
    answers = ["yes", subject] if split != "test" else ["Yes.", "something else"]
    questions = [f"Is this a {subject}?", f"What is shown?"]
    if split == "test":
        questions = [f"is this a {subject}", "What is SHOWN?"]
    return [
        {"question_id": f"{image_id}-q{k}", "image_id": image_id, "image": image, "question": questions[k],
         "answer": answers[k], "answer_type": "closed" if k == 0 else "open", "split": split}
        for k in range(2)
    ]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted dataset as split parquets (two row groups each) and its audit."""
    root = tmp_path_factory.mktemp("leak")
    rows = pd.DataFrame([r for split, i, img in planted_images() for r in question_rows(split, i, img)])
    paths = {}
    for split, group in rows.groupby("split"):
        paths[split] = root / f"{split}.parquet"
        group.to_parquet(paths[split], row_group_size=3)
    report = audit(LeakageSpec(), "planted", paths, root / "leakage.json", root / "pairs.csv")
    return root, paths, report


def test_bmp_pair_has_equal_file_sizes_but_other_pixels():
    images = {i: img for _, i, img in planted_images()}
    assert len(images["t-moon"]) == len(images["x-coins"])
    assert fingerprint(images["t-moon"], LeakageSpec())[0] != fingerprint(images["x-coins"], LeakageSpec())[0]


def test_audit_finds_every_planted_pair_and_no_other(planted):
    root, _, _ = planted
    pairs = pd.read_csv(root / "pairs.csv")
    found = set(pairs[["split_a", "image_id_a", "split_b", "image_id_b", "kind"]].itertuples(index=False, name=None))
    assert found == EXPECTED_PAIRS
    assert (pairs.loc[pairs["kind"] == "exact", "distance"] == 0).all()
    assert pairs["distance"].max() <= LeakageSpec().threshold


def test_counts_per_split_pair(planted):
    _, _, report = planted
    assert report["pairs"] == {
        "train-train": {"exact": 1, "near": 0, "images_a": 1, "images_b": 1},
        "train-val": {"exact": 0, "near": 1, "images_a": 1, "images_b": 1},
        "train-test": {"exact": 2, "near": 2, "images_a": 4, "images_b": 3},
        "val-test": {"exact": 1, "near": 0, "images_a": 1, "images_b": 1},
        "test-test": {"exact": 0, "near": 1, "images_a": 1, "images_b": 1},
    }
    assert report["images"] == {"train": 7, "val": 3, "test": 8}
    assert report["hash"] == {"exact": "sha256 of decoded RGB pixels", "near": "imagehash.phash",
                              "hash_size": 8, "bits": 64, "threshold": 6}
    assert json.loads((planted[0] / "leakage.json").read_text()) == json.loads(json.dumps(report))


def test_affected_questions_and_question_overlap(planted):
    _, _, report = planted
    test = report["affected"]["test"]
    assert test["image_ids"] == ["x-camera-webp", "x-chelsea-crop", "x-coffee-small"]
    assert test["rows"] == 6 and test["share"] == pytest.approx(6 / 16)
    # "is this a camera" == "Is this a camera?" with answer "Yes." == "yes"; "What is SHOWN?"
    # is asked of the train twin too, but with another answer.
    assert test["same_question"] == 6 and test["same_question_same_answer"] == 3
    val = report["affected"]["val"]
    assert val["question_ids"] == ["v-astronaut-jpeg-q0", "v-astronaut-jpeg-q1"]
    assert val["same_question"] == 2 and val["same_question_same_answer"] == 2


def test_warning_names_the_test_images_that_duplicate_train(tmp_path, planted, caplog):
    _, paths, _ = planted
    with caplog.at_level(logging.WARNING, logger="medvqa.data.leakage"):
        audit(LeakageSpec(), "planted", paths, tmp_path / "l.json", tmp_path / "p.csv")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 test image(s) duplicate train images" in warnings[0]
    assert "6 of 16 test rows (37.5%)" in warnings[0]


def test_caption_dataset_pairs_images_only(tmp_path):
    images = planted_images()
    rows = pd.DataFrame([{"image_id": i, "image": img, "caption": f"a {i}", "split": s} for s, i, img in images])
    paths = {}
    for split, group in rows.groupby("split"):
        paths[split] = tmp_path / f"{split}.parquet"
        group.to_parquet(paths[split])
    report = audit(LeakageSpec(), "caps", paths, tmp_path / "l.json", tmp_path / "p.csv")
    assert report["affected"]["test"]["rows"] == 3 and "same_question" not in report["affected"]["test"]
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(EXPECTED_PAIRS)


def test_threshold_zero_keeps_exact_pairs_and_equal_hashes_only(tmp_path, planted):
    _, paths, _ = planted
    audit(LeakageSpec(threshold=0), "planted", paths, tmp_path / "l.json", tmp_path / "p.csv")
    pairs = pd.read_csv(tmp_path / "p.csv")
    assert (pairs["kind"] == "exact").sum() == 4 and (pairs["distance"] == 0).all()
    assert len(pairs) < len(EXPECTED_PAIRS)


def test_blocked_hamming_search_equals_brute_force():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=(300, 2), dtype=np.uint64)
    words[150] = words[3]
    words[150, 1] ^= np.uint64(0b1011)  # 3 bits apart
    words[299] = words[3]
    i, j, d = near_pairs(words, 3)
    bits = np.unpackbits(words.view(np.uint8), axis=1).astype(int)
    brute = {(a, b) for a in range(300) for b in range(a + 1, 300) if np.sum(bits[a] != bits[b]) <= 3}
    assert set(zip(i.tolist(), j.tolist())) == brute == {(3, 150), (3, 299), (150, 299)}
    assert sorted(d.tolist()) == [0, 3, 3]


def test_question_normalisation():
    assert normalise_question("  Is this a CT-scan? ") == normalise_question("is this a ct scan")


def test_spec_rejects_bad_values():
    with pytest.raises(ConfigError, match="hash='md5'"):
        LeakageSpec.from_mapping({"hash": "md5"}, where="datasets.x.leakage")
    with pytest.raises(ConfigError, match="threshold"):
        LeakageSpec.from_mapping({"threshold": 40}, where="datasets.x.leakage")
    with pytest.raises(ConfigError, match="unknown key"):
        LeakageSpec.from_mapping({"treshold": 4}, where="datasets.x.leakage")
