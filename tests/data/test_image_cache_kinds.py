"""image_cache kinds: png and none read back exactly the raw cache's arrays; summary.json states
each kind's bytes on disk; bad settings fail naming the key."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from builders import vqa_rows
from medvqa import paths
from medvqa.data.config import DatasetConfig
from medvqa.data.images import build_image_cache, build_png_cache, load_image_cache
from medvqa.data.summary import image_storage
from medvqa.spec import ConfigError

SIZE = 24


def encoded(pixels: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def awkward_split(path) -> pd.DataFrame:
    """Noisy images of every kind the decoder special-cases: JPEG, RGBA, palette, 16-bit grey
    (HIGH_DEPTH_RULE), non-square, smaller and larger than SIZE; each asked about twice."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    images = [
        encoded(noise, "PNG"), encoded(noise, "JPEG"),
        encoded(rng.integers(0, 256, (30, 20, 4), dtype=np.uint8), "PNG"),
        _palette(noise),
        encoded(rng.integers(0, 65535, (40, 40), dtype=np.uint16), "PNG", None),
        encoded(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8), "PNG"),
    ]
    rows = vqa_rows(n_images=len(images), questions_per_image=2)
    first = rows["image_id"].drop_duplicates().tolist()
    rows["image"] = rows["image_id"].map(dict(zip(first, images)))
    rows.to_parquet(path, row_group_size=3)  # images cross row groups
    return rows


def _palette(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).quantize(16).save(buffer, format="PNG")
    return buffer.getvalue()


def caches(tmp_path) -> dict[str, tuple]:
    """{kind: (images, image_ids)} of the three kinds over one split parquet."""
    split = tmp_path / "train.parquet"
    stem = str(tmp_path / f"images_{SIZE}.train")
    build_image_cache(split, SIZE, f"{stem}.npy", f"{stem}.ids.json")
    build_png_cache(split, SIZE, f"{stem}.png.arrow", threads=2, batch_rows=2)
    return {kind: tuple(paths.cache_files(kind, stem, str(split)).values()) for kind in paths.CACHE_KINDS}


def test_png_and_none_read_the_raw_arrays_byte_for_byte(tmp_path):
    rows = awkward_split(tmp_path / "train.parquet")
    files = caches(tmp_path)
    raw, raw_ids = load_image_cache(*files["raw"], SIZE)
    assert raw.shape == (6, SIZE, SIZE, 3) and list(raw_ids) == rows["image_id"].drop_duplicates().tolist()
    for kind in ("png", "none"):
        images, ids = load_image_cache(*files[kind], SIZE)
        assert ids == raw_ids and len(images) == 6 and images.shape == raw.shape
        assert all(images[i].dtype == np.uint8 and np.array_equal(images[i], raw[i]) for i in range(6))
        assert np.array_equal(images[1:5], raw[1:5]) and np.array_equal(images[[5, 0]], raw[[5, 0]])
        assert np.array_equal(images[-1], raw[-1])
        with pytest.raises(IndexError):
            images[6]


def test_summary_states_the_kind_and_its_bytes_on_disk(tmp_path):
    awkward_split(tmp_path / "train.parquet")
    files = caches(tmp_path)
    split = {"train": tmp_path / "train.parquet"}
    for kind in paths.CACHE_KINDS:
        cache = {"train": dict(zip(("images", "image_ids"), files[kind]))}
        storage = image_storage(split, SIZE, kind, cache)
        out = storage["splits"]["train"]
        assert storage["cache"] == kind and out["images"] == 6
        on_disk = {"raw": (tmp_path / f"images_{SIZE}.train.npy").stat().st_size
                   + (tmp_path / f"images_{SIZE}.train.ids.json").stat().st_size,
                   "png": (tmp_path / f"images_{SIZE}.train.png.arrow").stat().st_size, "none": 0}[kind]
        assert out["cache_bytes"] == on_disk and out["cache_bytes_per_image"] == round(on_disk / 6)


def test_bad_kinds_and_a_missing_size_fail_naming_the_key(tmp_path):
    entry = {"source": "demo", "image_size": 32}
    assert DatasetConfig.from_mapping(entry, "datasets.d").image_cache == "raw"
    with pytest.raises(ConfigError, match=r"datasets\.d: image_cache='jpeg' is not one of 'raw', 'png', 'none'"):
        DatasetConfig.from_mapping({**entry, "image_cache": "jpeg"}, "datasets.d")
    awkward_split(tmp_path / "train.parquet")
    files = caches(tmp_path)
    with pytest.raises(ValueError, match="image_cache none .* needs the image_size"):
        load_image_cache(*files["none"])
    with pytest.raises(ValueError, match=f"holds {SIZE} px images, not image_size 32"):
        load_image_cache(*files["png"], 32)
    with pytest.raises(ValueError, match="not an image cache"):
        load_image_cache(tmp_path / "x.ids.json", tmp_path / "x.ids.json")


def test_the_path_grammar_names_each_kind_and_derived_views_read_the_right_files():
    config = {"datasets": {
        "b": {"image_size": 32, "image_cache": "png"},
        "b-closed": {"image_size": 32, "image_cache": "png", "images_from": "b"},
        "n": {"image_size": 32, "image_cache": "none"},
        "n-closed": {"image_size": 32, "image_cache": "none", "images_from": "n"},
        "r": {"image_size": 32},
    }}
    assert paths.image_cache(config, "r", "val") == {"images": "results/data/r/images_32.val.npy",
                                                     "image_ids": "results/data/r/images_32.val.ids.json"}
    png = "results/data/b/images_32.val.png.arrow"
    assert paths.image_cache(config, "b-closed", "val") == {"images": png, "image_ids": png}
    # none: the view's own split holds exactly its images, encoded
    own = "results/data/n-closed/val.parquet"
    assert paths.image_cache(config, "n-closed", "val") == {"images": own, "image_ids": own}
    assert [paths.cache_kind(paths.image_cache(config, d, "val")["images"]) for d in ("r", "b", "n")] == [
        "raw", "png", "none"]
