"""The embedded demo dataset: deterministic, schema-valid, split by image, answers in the pixels,
and not answerable from the question alone."""

import dataclasses
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medvqa.data.baselines import majority_baseline, question_only_baseline
from medvqa.demo.dataset import MODALITIES, ORGANS, TEMPLATES, demo_layout, make_demo
from medvqa.demo.assets import SOURCES, lesion_mask, load_bases, render_image
from medvqa.data.schema import check_rows
from medvqa.spec import ConfigError

MODALITY_WORDS = {
    "ct": r"\bct\b", "mri": r"\bmri\b", "ultrasound": r"\bultrasound\b", "nuclear medicine": r"\bnuclear\b",
    "fundus photography": r"\bfundus\b", "microscopy": r"\bmicroscopy\b",
}


@pytest.fixture(scope="module")
def vqa():
    return make_demo(seed=0)


@pytest.fixture(scope="module")
def captions():
    return make_demo(seed=0, task="caption")


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def closed_rows(vqa, content_type):
    return vqa[(vqa["content_type"] == content_type) & (vqa["answer_type"] == "closed")]


def test_same_seed_gives_identical_rows_and_another_seed_other_images():
    first, again = make_demo(seed=3, n_images=36), make_demo(seed=3, n_images=36)
    pd.testing.assert_frame_equal(first, again)
    assert list(first["image"]) == list(again["image"])
    other = make_demo(seed=4, n_images=36)
    a = first.drop_duplicates("image_id").set_index("image_id")["image"]
    b = other.drop_duplicates("image_id").set_index("image_id")["image"]
    assert list(a.index) == list(b.index)
    assert (a != b).all()


def test_default_size_and_schema(vqa):
    assert vqa["image_id"].nunique() == 300
    assert 1800 <= len(vqa) <= 2200
    assert vqa["question_id"].str.fullmatch(r"demo-q\d{6}").all()
    assert vqa["image_id"].str.fullmatch(r"demo-i\d{4}").all()
    for split, rows in vqa.groupby("split"):
        good, rejected = check_rows(rows, "demo", split)
        assert rejected.empty
        assert len(good) == len(rows)
        assert {"modality", "organ", "content_type"} <= set(good.columns)
    assert pixels(vqa["image"].iloc[0]).shape == (128, 128, 3)
    assert set(vqa["modality"]) == set(MODALITIES)
    assert set(vqa["organ"]) == set(ORGANS)


def test_split_by_image_with_requested_fractions(vqa):
    assert (vqa.groupby("image_id")["split"].nunique() == 1).all()
    images = vqa.drop_duplicates("image_id")["split"].value_counts()
    assert images.to_dict() == {"train": 210, "val": 45, "test": 45}


def test_both_answer_types_and_every_template(vqa):
    assert set(vqa["answer_type"]) == {"closed", "open"}
    assert set(vqa.loc[vqa["answer_type"] == "closed", "answer"]) == {"yes", "no"}
    assert set(vqa["content_type"]) == {t.content_type for t in TEMPLATES}
    assert vqa["question"].nunique() <= 3 * len(TEMPLATES) + 3 * (len(MODALITIES) + len(ORGANS) + 2)


def test_open_answers_balanced_within_each_split(vqa):
    for (split, content_type), rows in vqa[vqa["answer_type"] == "open"].groupby(["split", "content_type"]):
        shares = rows["answer"].value_counts(normalize=True)
        assert shares.max() <= 1.0 / len(shares) + 0.1, (split, content_type, shares.to_dict())


def test_closed_answers_balanced_for_every_value_asked_about(vqa):
    presence = closed_rows(vqa, "abnormality")
    assert abs((presence["answer"] == "yes").mean() - 0.5) < 0.03
    words = {
        "position": {"left": r"\bleft\b", "right": r"\bright\b"},
        "modality": MODALITY_WORDS,
        "organ": {organ: rf"\bthe {organ}\b" for organ in ORGANS},
    }
    for content_type, patterns in words.items():
        for split, rows in closed_rows(vqa, content_type).groupby("split"):
            for value, pattern in patterns.items():
                asked = rows[rows["question"].str.lower().str.contains(pattern)]
                yes = int((asked["answer"] == "yes").sum())
                assert len(asked) > 0 and abs(2 * yes - len(asked)) <= 1, (content_type, split, value)


def test_question_only_and_majority_baselines_are_low(vqa):
    train, test = vqa[vqa["split"] == "train"], vqa[vqa["split"] == "test"]
    blind = question_only_baseline(train, test)
    majority = majority_baseline(train, test)
    assert blind["overall"] <= 0.5
    assert blind["closed"] <= 0.6
    assert majority["overall"] <= 0.35
    assert blind["unseen"] == 0.0


def test_pixels_are_the_rendered_spec_and_lesions_are_where_the_answers_say():
    specs = demo_layout(seed=5, n_images=48)
    rows = make_demo(seed=5, n_images=48, image_px=96)
    bases = load_bases()
    images = rows.drop_duplicates("image_id").set_index("image_id")["image"]
    for spec in specs:
        drawn = render_image(spec, bases, 96)
        assert np.array_equal(pixels(images[spec.image_id]), drawn)
        plain = render_image(dataclasses.replace(spec, lesions=()), bases, 96)
        changed = np.abs(drawn.astype(int) - plain).max(axis=2) > 0
        footprint = np.zeros((96, 96), dtype=bool)
        for lesion in spec.lesions:
            disc, whole = lesion_mask(lesion, 96)
            footprint |= whole > 0
            assert changed[disc > 0.99].mean() > 0.9  # the lesion really shows
            assert (lesion.x < 0.5) == (spec.side == "left")
        assert not (changed & ~footprint).any()  # nothing else changed
        answers = rows[rows["image_id"] == spec.image_id].set_index("content_type")
        expect_presence = "yes" if spec.lesions else "no"
        assert closed_rows(answers.reset_index(), "abnormality")["answer"].tolist() == [expect_presence]
        if spec.lesions:
            assert answers.loc["quantity", "answer"] == str(len(spec.lesions))
            side_open = answers[(answers.index == "position") & (answers["answer_type"] == "open")]
            assert side_open["answer"].tolist() == [spec.side]


def test_bright_pixels_follow_presence_and_side(vqa):
    """A measurable property without the spec: near-white pixels come with lesions, on their side."""
    images = vqa.drop_duplicates("image_id")[["image_id", "image"]].values
    white = {image_id: pixels(png).min(axis=2) >= 215 for image_id, png in images}
    presence = closed_rows(vqa, "abnormality").set_index("image_id")["answer"]
    with_lesion = np.mean([white[i].mean() for i in presence.index[presence == "yes"]])
    without = np.mean([white[i].mean() for i in presence.index[presence == "no"]])
    assert with_lesion > 1.5 * without
    side = vqa[(vqa["content_type"] == "position") & (vqa["answer_type"] == "open")]
    on_stated_side = [
        (white[i][:, :64].sum() > white[i][:, 64:].sum()) == (answer == "left")
        for i, answer in side[["image_id", "answer"]].values
    ]
    assert np.mean(on_stated_side) >= 0.8


def test_closed_answers_agree_with_the_image_metadata(vqa):
    for content_type, column in (("modality", "modality"), ("organ", "organ")):
        rows = closed_rows(vqa, content_type)
        patterns = MODALITY_WORDS if column == "modality" else {o: rf"\bthe {o}\b" for o in ORGANS}
        for question, answer, truth in rows[["question", "answer", column]].values:
            matches = [v for v, p in patterns.items() if re.search(p, question.lower())]
            assert len(matches) == 1, question
            assert (matches[0] == truth) == (answer == "yes"), (question, truth, answer)


def test_captions_one_per_image_same_split_and_pixels_as_vqa(vqa, captions):
    assert captions["image_id"].is_unique
    by_image = vqa.drop_duplicates("image_id").set_index("image_id")
    assert set(captions["image_id"]) == set(by_image.index)
    caption_rows = captions.set_index("image_id")
    assert (caption_rows["split"] == by_image.loc[caption_rows.index, "split"]).all()
    assert (caption_rows["image"] == by_image.loc[caption_rows.index, "image"]).all()
    for split, rows in captions.groupby("split"):
        assert check_rows(rows, "demo", split)[1].empty
    counts = vqa[vqa["content_type"] == "quantity"].set_index("image_id")["answer"]
    for image_id, caption in caption_rows["caption"].items():
        words = caption.lower()
        if image_id in counts.index:
            assert ("one", "two", "three")[int(counts[image_id]) - 1] in words
            assert "left" in words or "right" in words
        else:
            assert "no " in words or "without" in words
    assert captions["caption"].nunique() > 50


def test_every_source_loads_offline():
    bases = load_bases()
    assert set(bases) == {s.name for s in SOURCES}
    for frames in bases.values():
        assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 and f.std() > 5 for f in frames)


@pytest.mark.parametrize("kwargs", [{"task": "segmentation"}, {"split_fractions": (0.5, 0.2, 0.2)}])
def test_bad_arguments_name_the_key(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        make_demo(**kwargs)


@pytest.mark.parametrize("options", [{"n_images": 9}, {"n_images": 20_001}, {"image_px": 31}, {"image_px": 1025}])
def test_demo_options_out_of_range_name_the_key(options):
    from medvqa.data.sources import DemoSourceSpec

    with pytest.raises(ConfigError, match=rf"datasets\.demo\.options: {next(iter(options))}=\d+ is outside"):
        DemoSourceSpec.from_mapping(options, "datasets.demo.options")
