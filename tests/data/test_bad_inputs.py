"""Bad inputs through the real import and cache stages (issue 13): each fails with one line
naming dataset, split, row or file and reason, or with on_bad_sample: skip is listed in
rejected.csv with a reason that is the same on every run."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data.fixtures import image_file_bytes, slake_folder
from medvqa.data.images import build_image_cache, decode_resize, decode_rgb
from medvqa.data.prepare import ImportSpec, import_dataset
from medvqa.data.schema import BadSampleError, image_problem
from medvqa.data.sources import load_source
from medvqa.data.unify import SourceFileError
from medvqa.spec import ConfigError

SPLITS = ("train", "val", "test")


def write_table(root, images, ids=None, splits=None):
    """A local csv (qid, img, q, a, split) under ``root`` whose image cells are ``images``;
    every listed name that is bytes is written to root/images/<row>.png first."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    cells = []
    for i, image in enumerate(images):
        if isinstance(image, bytes):
            (root / "images" / f"{i}.png").write_bytes(image)
            image = f"images/{i}.png"
        cells.append(image)
    n = len(cells)
    table = pd.DataFrame({
        "question_id": ids or [f"q{i}" for i in range(n)], "image": cells, "question": ["is it red?"] * n,
        "answer": ["yes"] * n, "split": splits or (["train", "val", "test"] * n)[:n],
    })
    table.to_csv(root / "rows.csv", index=False)
    return root / "rows.csv"


def run_import(root, table, on_bad_sample="error", **options):
    spec = ImportSpec(source="local", options={"path": str(table), **options}, on_bad_sample=on_bad_sample)
    out = root / "out"
    paths = {s: out / f"{s}.parquet" for s in SPLITS}
    counts = import_dataset(spec, "mine", paths, out / "rejected.csv", out / "meta.json")
    return counts, pd.read_csv(out / "rejected.csv")


def good_images(n):
    return [image_file_bytes(i) for i in range(n)]


def truncated_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:-400]


def test_truncated_jpeg_is_caught_at_import_and_can_be_skipped(tmp_path):
    """Image.verify() passed truncated JPEGs; the cache job then died without naming the row."""
    images = good_images(6)
    images[5] = truncated_jpeg()
    table = write_table(tmp_path, images)
    with pytest.raises(BadSampleError, match=r"dataset 'mine' split 'test' row question_id=q5: corrupt image .*truncated"):
        run_import(tmp_path, table)
    counts, rejected = run_import(tmp_path, table, "skip")
    assert counts == {"train": 2, "val": 2, "test": 1}
    assert rejected[["split", "id"]].values.tolist() == [["test", "q5"]]


def test_image_cache_names_the_image_it_cannot_decode(tmp_path):
    rows = pd.DataFrame({"image_id": ["fine", "cut"], "image": [image_file_bytes(1), truncated_jpeg()]})
    rows.to_parquet(tmp_path / "test.parquet")
    with pytest.raises(ValueError, match=r"test.parquet image_id=cut: cannot decode image \(OSError: .*truncated"):
        build_image_cache(tmp_path / "test.parquet", 8, tmp_path / "c.npy", tmp_path / "c.ids.json")


def encoded(array, mode=None, fmt="PNG"):
    buffer = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buffer, fmt)
    return buffer.getvalue()


def test_16_bit_and_float_images_are_rescaled_by_their_range_not_clipped():
    # A 12-bit CT-like range inside a 16-bit PNG: convert("RGB") made every pixel 255.
    sixteen = encoded(np.array([[0, 1000, 2000, 4000]], dtype=np.uint16))
    assert Image.open(io.BytesIO(sixteen)).mode.startswith("I;16")
    assert np.asarray(decode_rgb(sixteen))[0, :, 0].tolist() == [0, 64, 128, 255]  # rint(v * 255 / 4000)
    full = encoded(np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64))
    assert abs(decode_resize(full, 32).mean() - 127.5) < 1
    floats = encoded(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32), fmt="TIFF")
    assert np.asarray(decode_rgb(floats))[0, :, 1].tolist() == [0, 128, 255]
    flat = encoded(np.full((2, 2), 700, dtype=np.uint16))
    assert np.asarray(decode_rgb(flat)).max() == 0
    nan = encoded(np.array([[0.0, np.nan]], dtype=np.float32), fmt="TIFF")
    assert image_problem(nan) == "corrupt image (ValueError: F image with NaN or infinite pixels)"


def test_image_paths_stay_inside_the_image_folder_unless_allowed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(image_file_bytes(9))
    root = tmp_path / "data"
    images = good_images(6)
    images[4], images[5] = "../outside/secret.png", str(outside / "secret.png")
    table = write_table(root, images)
    leaves = r"row question_id=q4: image outside the image folder \(path '../outside/secret.png' leaves"
    with pytest.raises(BadSampleError, match=leaves):
        run_import(root, table)
    _, rejected = run_import(root, table, "skip")
    assert rejected["id"].tolist() == ["q4", "q5"]
    absolute = rejected["reason"].iloc[1]
    assert "(absolute path " in absolute and "options.absolute_image_paths: true" in absolute
    counts, rejected = run_import(root, table, "skip", absolute_image_paths=True)
    assert rejected["id"].tolist() == ["q4"] and counts["test"] == 2


def test_missing_images_name_the_file_looked_for(tmp_path):
    table = write_table(tmp_path, good_images(3))
    wrong = tmp_path / "elsewhere"
    with pytest.raises(BadSampleError, match=f"row question_id=q0: missing image \\(no file '{wrong}/images/0.png'\\)"):
        run_import(tmp_path, table, image_dir=str(wrong))


def test_non_utf8_and_malformed_tables_name_dataset_file_and_place(tmp_path):
    table = write_table(tmp_path, good_images(3))
    table.write_bytes(table.read_bytes().replace(b"is it red", b"caf\xe9 red"))
    with pytest.raises(SourceFileError, match=r"dataset 'mine' \(source local\): .*rows.csv: not utf-8 text \(byte 0xe9"):
        load_source("local", {"path": str(table)}, "mine")
    rows = load_source("local", {"path": str(table), "encoding": "latin-1"}, "mine")
    assert rows["question"].iloc[0] == "café red?"
    with pytest.raises(ConfigError, match="encoding='klingon'"):
        load_source("local", {"path": str(table), "encoding": "klingon"}, "mine")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"question_id": "a", "image": "images/0.png"}\n{"question_id": "b", "image\n')
    with pytest.raises(SourceFileError, match=r"rows.jsonl: invalid JSON at line 2 column 22"):
        load_source("local", {"path": str(jsonl)}, "mine")


def test_malformed_slake_json_names_file_line_and_column(tmp_path):
    folder = slake_folder(tmp_path)
    text = (folder / "validate.json").read_text(encoding="utf-8")
    (folder / "validate.json").write_text(text[:-20], encoding="utf-8")
    with pytest.raises(SourceFileError, match=r"dataset 'slake' \(source slake\): .*validate.json: invalid JSON at line 1"):
        load_source("slake", {"path": str(folder)}, "slake")
    (folder / "validate.json").write_bytes(text.encode("utf-8").replace("Lung".encode(), b"L\xe9ng"))
    with pytest.raises(SourceFileError, match=r"validate.json: not utf-8 text \(byte 0xe9"):
        load_source("slake", {"path": str(folder)}, "slake")


def test_rejected_reasons_are_the_same_on_every_run(tmp_path):
    """PIL's message embedded '<_io.BytesIO object at 0x7f...>', different in every process."""
    images = good_images(6)
    images[5] = b"this is not an image at all"
    table = write_table(tmp_path, images)
    _, first = run_import(tmp_path, table, "skip")
    _, second = run_import(tmp_path, table, "skip")
    assert first.equals(second) and "0x" not in first["reason"].iloc[0]
    assert first["reason"].tolist() == ["corrupt image (not an image format PIL can read)"]


def test_a_question_id_may_not_repeat_across_splits(tmp_path):
    table = write_table(tmp_path, good_images(4), ids=["a", "b", "c", "a"], splits=["train", "val", "test", "test"])
    with pytest.raises(BadSampleError, match=r"split 'test' row question_id=a: duplicate question_id \(also in split train\)"):
        run_import(tmp_path, table)
    counts, rejected = run_import(tmp_path, table, "skip")
    assert counts == {"train": 1, "val": 1, "test": 1}
    assert rejected[["split", "id"]].values.tolist() == [["test", "a"]]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["rows"] == counts


def test_summary_counts_rejected_rows_by_kind_of_reason(tmp_path):
    from medvqa.data.summary import summarise

    images = good_images(9)
    images[6], images[7] = "images/gone_1.png", "images/gone_2.png"  # two files that do not exist
    table = write_table(tmp_path, images)
    run_import(tmp_path, table, "skip")
    out = tmp_path / "out"
    summary = summarise("mine", {s: out / f"{s}.parquet" for s in SPLITS}, out / "rejected.csv",
                        out / "meta.json", tmp_path / "summary.json")
    assert summary["rejected"] == {"rows": 2, "by_reason": {"missing image": 2}}
