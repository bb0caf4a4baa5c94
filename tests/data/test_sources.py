"""Dataset sources against on-disk fixtures in the real formats (see fixtures.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from data.fixtures import (
    image_file_bytes,
    local_rows,
    rocov2_like,
    slake_folder,
    slake_record,
    vqa_rad_like,
    write_hub_layout,
)

from medvqa.data import schema
from medvqa.data.prepare import FilterSpec, filter_rows
from medvqa.data.sources import SOURCES, SourceNotFoundError, load_source
from medvqa.data.unify import CLOSED_RULE, SourceFileError, content_id
from medvqa.spec import ConfigError


def english(rows, language="en"):
    """The rows the default filter stage keeps, split by split."""
    spec = FilterSpec(language=language)
    kept = [filter_rows(rows[rows["split"] == split], spec, split) for split in schema.SPLITS]
    return pd.concat(kept, ignore_index=True)


def hf_options(path, tmp_path, **extra):
    return {"path": str(path), "cache_dir": str(tmp_path / "hf_cache"), **extra}


def assert_valid(rows, dataset="d"):
    for split in schema.SPLITS:
        part = rows[rows["split"] == split]
        assert len(part), split
        schema.check_rows(part, dataset, split)  # raises on any bad row


@pytest.fixture(scope="module")
def vqa_rad(tmp_path_factory):
    root = tmp_path_factory.mktemp("vqa-rad")
    return root, vqa_rad_like(root)


def test_sources_dict_names_every_source():
    assert set(SOURCES) == {"hf", "slake", "vqa_rad", "local", "demo"}


def test_hf_vqa_rad_like_splits_val_off_train_by_image(vqa_rad, tmp_path):
    root, raw = vqa_rad
    rows = load_source("hf", hf_options(root, tmp_path, preset="vqa_rad"), "vqa_rad")
    assert_valid(rows)
    counts = rows["split"].value_counts()
    assert counts["train"] + counts["val"] == 20 and counts["test"] == 3
    train_ids = set(rows.loc[rows["split"] == "train", "image_id"])
    val_ids = set(rows.loc[rows["split"] == "val", "image_id"])
    assert len(val_ids) == 1 and len(train_ids) == 9 and not train_ids & val_ids
    assert "1 of 10 train images" in rows.attrs["val_split_rule"]
    again = load_source("hf", hf_options(root, tmp_path, preset="vqa_rad"), "vqa_rad")
    pd.testing.assert_frame_equal(rows, again)
    other_seed = load_source("hf", hf_options(root, tmp_path, preset="vqa_rad", val_seed=3), "vqa_rad")
    assert set(other_seed.loc[other_seed["split"] == "val", "image_id"]) != val_ids


def test_hf_vqa_rad_like_rows_ids_and_closed_rule(vqa_rad, tmp_path):
    root, raw = vqa_rad
    rows = load_source("hf", hf_options(root, tmp_path, preset="vqa_rad"), "vqa_rad")
    test = rows[rows["split"] == "test"]
    assert list(test["question_id"]) == ["vqa_rad-test-0", "vqa_rad-test-1", "vqa_rad-test-2"]
    assert list(test["answer_type"]) == ["closed", "open", "closed"]
    assert list(test["image"]) == raw["test"]["image"]  # original bytes, not re-encoded
    assert rows.attrs["answer_type_rule"] == CLOSED_RULE and "'yes' or 'no'" in CLOSED_RULE
    learn = rows[rows["split"] != "test"].set_index("question_id").loc[[f"vqa_rad-train-{i}" for i in range(4)]]
    assert list(learn["answer"]) == ["no.", "left  Lung", "Yes", "left  Lung"]  # text untouched
    assert list(learn["answer_type"]) == ["closed", "open", "closed", "open"]
    # Two questions on one image share its id: the hash of the encoded bytes.
    assert learn["image_id"].iloc[0] == learn["image_id"].iloc[1] == content_id(raw["train"]["image"][0])
    assert learn["image_id"].iloc[2] != learn["image_id"].iloc[0]


def test_hf_val_fraction_option(vqa_rad, tmp_path):
    root, _ = vqa_rad
    rows = load_source("hf", hf_options(root, tmp_path, preset="vqa_rad", val_fraction=0.3), "vqa_rad")
    assert rows.loc[rows["split"] == "val", "image_id"].nunique() == 3


def test_hf_rocov2_like_caption_rows(tmp_path):
    raw = rocov2_like(tmp_path / "roco")
    rows = load_source("hf", hf_options(tmp_path / "roco", tmp_path, preset="rocov2"), "rocov2")
    assert_valid(rows)
    assert list(rows.columns) == ["image_id", "image", "caption", "split", "cui"]
    val = rows[rows["split"] == "val"]
    assert list(val["image_id"]) == raw["validation"]["image_id"]
    assert list(val["image"]) == raw["validation"]["image"]
    assert list(val["cui"]) == ["C0040405", "C0040405;C0817096", "C0040405;C0817096"]
    assert "val_split_rule" not in rows.attrs and "answer_type_rule" not in rows.attrs
    # A local copy has no hub id: the generic preset finds the same columns by name.
    generic = load_source("hf", hf_options(tmp_path / "roco", tmp_path), "rocov2")
    pd.testing.assert_frame_equal(rows, generic)


def slake_mirror(root, with_types=True):
    """A SLAKE parquet mirror: official fields next to an image column, en + zh rows."""
    splits = {}
    for k, split in enumerate(("train", "validation", "test")):
        records = [slake_record(10 * k + j, k, lang, "q?", "Yes", "CLOSED") for j, lang in enumerate("en zh en".split())]
        records[2].update(answer="Lung", answer_type="OPEN")
        columns = pd.DataFrame(records).drop(columns=["triple"]).to_dict("list")
        if not with_types:
            columns = {c: columns[c] for c in ("question", "answer")}
        columns["image"] = [image_file_bytes(k)] * 3
        splits[split] = columns
    return write_hub_layout(root, splits)


def test_hf_slake_mirror_preset(tmp_path):
    root = slake_mirror(tmp_path / "slake_hub")
    everything = load_source("hf", hf_options(root, tmp_path, preset="slake"), "slake")
    assert len(everything) == 9 and set(everything["q_lang"]) == {"en", "zh"}
    rows = english(everything)
    assert_valid(rows)
    assert set(rows["q_lang"]) == {"en"} and len(rows) == 6
    train = rows[rows["split"] == "train"]
    assert list(train["question_id"]) == ["0", "2"] and list(train["answer_type"]) == ["closed", "open"]
    assert set(train["organ"]) == {"Lung"} and set(train["image_id"]) == {"xmlab0/source.jpg"}
    assert everything.attrs["answer_type_rule"] == "answer_type column of the source, lower-cased"


def test_hf_slake_mirror_without_answer_types_uses_yes_no_rule(tmp_path):
    root = slake_mirror(tmp_path / "slake_en", with_types=False)
    rows = load_source("hf", hf_options(root, tmp_path, preset="slake"), "slake")
    assert list(rows["answer_type"][:3]) == ["closed", "closed", "open"]
    assert rows.attrs["answer_type_rule"] == CLOSED_RULE


def test_hf_custom_columns_and_split_names(tmp_path):
    cols = {"img": [image_file_bytes(i) for i in range(4)], "q": ["a?", "b?", "c?", "d?"],
            "ans": ["yes", "x", "y", "z"], "qtype": ["CLOSED", "OPEN", "OPEN", "OPEN"]}
    splits = {"train": cols, "dev": cols, "test": cols, "extra": cols}
    root = write_hub_layout(tmp_path / "custom", splits, image_column="img")
    options = hf_options(
        root, tmp_path, columns={"image": "img", "question": "q", "answer": "ans", "answer_type": "qtype"},
        split_names={"dev": "val", "extra": "drop"},
    )
    rows = load_source("hf", options, "custom")
    assert_valid(rows)
    assert rows["split"].value_counts().to_dict() == {"train": 4, "val": 4, "test": 4}
    assert list(rows["answer_type"][:2]) == ["closed", "open"]
    with pytest.raises(ConfigError, match="'extra' have no mapping"):
        load_source("hf", {**options, "split_names": {"dev": "val"}}, "custom")
    with pytest.raises(ConfigError, match="columns.question='nope'.*available: ans, img"):
        load_source("hf", {**options, "columns": {"question": "nope"}}, "custom")
    with pytest.raises(ConfigError, match="no source column for image, question, answer"):
        load_source("hf", hf_options(root, tmp_path, split_names={"dev": "val", "extra": "drop"}), "custom")


def test_hf_missing_path_and_hub_id_say_how_to_obtain(tmp_path):
    missing = tmp_path / "not_downloaded"
    with pytest.raises(SourceNotFoundError, match="not_downloaded.*local directory does not exist.*hf download"):
        load_source("hf", hf_options(missing, tmp_path), "vqa_rad")
    with pytest.raises(SourceNotFoundError) as err:
        load_source("hf", hf_options("someone/not-cached-dataset", tmp_path), "x")
    assert "hf download someone/not-cached-dataset --repo-type dataset" in str(err.value)


def test_unknown_options_and_sources_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*'colums'"):
        load_source("hf", {"path": "x", "colums": {}}, "d")
    with pytest.raises(ConfigError, match="columns has unknown key.*'label'"):
        load_source("hf", {"path": "x", "columns": {"label": "y"}}, "d")
    with pytest.raises(ConfigError, match="split_names.dev='validation'"):
        load_source("local", {"path": "x.csv", "split_names": {"dev": "validation"}}, "d")
    with pytest.raises(ConfigError, match="unknown key.*'lang'"):
        load_source("slake", {"path": "x", "lang": "en"}, "d")
    with pytest.raises(ConfigError, match="unknown key.*'size'"):
        load_source("demo", {"size": 3}, "d")
    with pytest.raises(ConfigError, match="'kaggle' is not one of"):
        load_source("kaggle", {}, "d")


def test_slake_folder_english_after_the_default_language_filter(tmp_path):
    folder = slake_folder(tmp_path, missing_image=5)
    rows = english(load_source("slake", {"path": str(folder)}, "slake"))
    assert set(rows["q_lang"]) == {"en"}
    assert rows["split"].value_counts().to_dict() == {"train": 2, "val": 2, "test": 2}
    first = rows.iloc[0]
    assert (first["question_id"], first["image_id"], first["answer_type"], first["organ"]) == (
        "0", "xmlab0/source.jpg", "open", "Lung")
    assert first["image"] == (folder / "imgs/xmlab0/source.jpg").read_bytes()
    assert list(rows["answer_type"]) == ["open", "closed"] * 3
    test = rows[rows["split"] == "test"]
    assert test["image"].iloc[1] == b""  # xmlab5 is missing: reported by the checker
    with pytest.raises(schema.BadSampleError, match="question_id=10: missing image"):
        schema.check_rows(test, "slake", "test")


def test_slake_folder_keeps_both_languages_for_the_filter_stage(tmp_path):
    folder = slake_folder(tmp_path)
    both = load_source("slake", {"path": str(folder)}, "slake")
    assert len(both) == 12 and set(both["q_lang"]) == {"en", "zh"}
    assert_valid(both)
    zh = english(both, language="zh")
    assert set(zh["answer"]) == {"否"}


def test_slake_missing_folder_names_path_and_url(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"Slake1.0/train.json.*https://www.med-vqa.com/slake/"):
        load_source("slake", {"path": str(tmp_path / "Slake1.0")}, "slake")


LOCAL_COLUMNS = {"question_id": "qid", "image": "img", "question": "q", "answer": "a"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_local_single_table_with_split_column(tmp_path, fmt):
    table = local_rows(tmp_path)
    path = tmp_path / f"rows.{fmt}"
    {"csv": lambda: table.to_csv(path, index=False),
     "jsonl": lambda: table.to_json(path, orient="records", lines=True),
     "parquet": lambda: table.to_parquet(path)}[fmt]()
    options = {"path": str(path), "columns": LOCAL_COLUMNS, "split_column": "fold"}
    rows = load_source("local", options, "mine")
    assert rows["split"].value_counts().to_dict() == {"train": 4, "val": 2, "test": 2}
    assert list(rows["question_id"][:2]) == ["q000", "q001"]
    assert list(rows["answer"][:2]) == ["None", "yes"]  # "None" stays an answer in csv too
    assert list(rows["answer_type"][:2]) == ["open", "closed"]
    assert rows["image"].iloc[0] == (tmp_path / "images/train_0.png").read_bytes()
    assert rows.loc[rows["split"] == "test", "image_id"].tolist() == ["images/test_0.png", "images/test_1.png"]
    good, bad = schema.check_rows(rows[rows["split"] == "test"], "mine", "test", "skip")
    missing = f"missing image (no file {str(tmp_path / 'images/test_0.png')!r})"  # names the file looked for
    assert bad[["id", "reason"]].values.tolist() == [["q006", missing]] and len(good) == 1


def test_local_files_per_split_with_embedded_bytes_and_val_carving(tmp_path):
    table = local_rows(tmp_path, n_train=6)
    table["img"] = [(tmp_path / n).read_bytes() if (tmp_path / n).is_file() else b"" for n in table["img"]]
    paths = {}
    for split in ("train", "test"):
        paths[split] = str(tmp_path / f"{split}.parquet")
        table[table["fold"] == split].drop(columns="fold").to_parquet(paths[split])
    rows = load_source("local", {"path": paths, "columns": LOCAL_COLUMNS, "val_fraction": 0.34}, "mine")
    assert rows["split"].value_counts().to_dict() == {"train": 4, "val": 2, "test": 2}
    assert rows.loc[rows["split"] == "val", "image_id"].str.fullmatch("[0-9a-f]{16}").all()
    assert "2 of 6 train images" in rows.attrs["val_split_rule"]


def test_local_image_dir_option_and_json_list(tmp_path):
    table = local_rows(tmp_path / "elsewhere")
    records = table.rename(columns={"img": "image", "q": "question", "a": "answer", "fold": "split"})
    (tmp_path / "rows.json").write_text(json.dumps(records.to_dict("records")))
    options = {"path": str(tmp_path / "rows.json"), "image_dir": str(tmp_path / "elsewhere")}
    rows = load_source("local", options, "mine")
    assert rows["image"].iloc[0] == (tmp_path / "elsewhere/images/train_0.png").read_bytes()
    assert rows["question_id"].iloc[0] == "mine-train-0"


def test_local_missing_file_and_split_column(tmp_path):
    with pytest.raises(SourceNotFoundError, match="nothere.csv not found.*physionet.org"):
        load_source("local", {"path": str(tmp_path / "nothere.csv")}, "mimic")
    local_rows(tmp_path).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(ConfigError, match="no split column 'split'.*set split_column"):
        load_source("local", {"path": str(tmp_path / "rows.csv"), "columns": LOCAL_COLUMNS}, "d")


def test_demo_source_dispatches_to_the_loader_the_caller_passes():
    demo = pytest.importorskip("medvqa.demo.dataset")
    options = {"seed": 1, "n_images": 60, "image_px": 32}
    rows = load_source("demo", options, "demo", loaders={"demo": demo.load_demo})
    expected = demo.make_demo(seed=1, n_images=60, task="vqa", image_px=32)
    pd.testing.assert_frame_equal(rows, expected)
    # The product package holds no demo loader: without one the error names the dataset's source key.
    with pytest.raises(ConfigError, match=r"datasets\.demo\.source='demo': its loader was not passed"):
        load_source("demo", options, "demo")


def vqa_rad_release(root, missing_image=None):
    """A folder in the official VQA-RAD release layout: 'VQA_RAD Dataset Public.json' + image folder."""
    folder = root / "VQA_RAD"
    images = folder / "VQA_RAD Image Folder"
    images.mkdir(parents=True)
    records = []
    for i in range(8):
        name = f"synpic{1000 + i}.jpg"
        if i != missing_image:
            (images / name).write_bytes(image_file_bytes(i, "JPEG"))
        phrase = "test_freeform" if i == 6 else "test_para" if i == 7 else ("freeform", "para", "frame")[i % 3]
        base = {"image_name": name, "image_organ": "CHEST" if i % 2 else "HEAD", "phrase_type": phrase,
                "evaluation": "given", "qid_linked_id": f"link{i}"}
        records += [
            {**base, "qid": 10 * i + 1, "question": "Is the heart enlarged?", "answer": "yes",
             "answer_type": "CLOSED", "question_type": "SIZE"},
            # a closed question whose answer is not yes/no, with the release's trailing space
            {**base, "qid": 10 * i + 2, "question": "Is the lesion on the left or right?", "answer": "Left",
             "answer_type": "CLOSED ", "question_type": "POS"},
            # the release marks this yes/no answer OPEN: the source's type wins
            {**base, "qid": 10 * i + 3, "question": "Is there a fracture?", "answer": "no",
             "answer_type": "OPEN", "question_type": "ABN"},
            {**base, "qid": 10 * i + 4, "question": "How many lesions?", "answer": 2,
             "answer_type": "OPEN", "question_type": "COUNT"},
        ]
    (folder / "VQA_RAD Dataset Public.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def test_vqa_rad_release_uses_its_own_answer_types_and_test_set(tmp_path):
    folder = vqa_rad_release(tmp_path)
    rows = load_source("vqa_rad", {"path": str(folder), "val_fraction": 0.2}, "vqa_rad")
    assert_valid(rows)
    test = rows[rows["split"] == "test"].sort_values("question_id")
    assert test["question_id"].tolist() == ["61", "62", "63", "64", "71", "72", "73", "74"]
    assert test["answer_type"].tolist() == ["closed", "closed", "open", "open"] * 2
    assert test["answer"].tolist() == ["yes", "Left", "no", "2"] * 2
    assert set(test["organ"]) == {"HEAD", "CHEST"} and "POS" in set(test["content_type"])
    assert test["image"].iloc[0] == (folder / "VQA_RAD Image Folder/synpic1006.jpg").read_bytes()
    # val is carved from train by image: whole images, 4 questions each
    counts = rows["split"].value_counts().to_dict()
    assert counts["train"] + counts["val"] == 24 and counts["val"] % 4 == 0 and counts["val"] > 0
    assert rows.attrs["answer_type_rule"] == "answer_type column of the source, lower-cased"
    assert "test_freeform or test_para is test" in rows.attrs["test_split_rule"]


def test_vqa_rad_missing_release_names_the_files_and_url(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"VQA_RAD Dataset Public.json.*VQA_RAD Image Folder/.*osf.io"):
        load_source("vqa_rad", {"path": str(tmp_path / "nowhere")}, "vqa_rad")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_source("vqa_rad", {"path": str(tmp_path), "val_fraction": 0.9}, "vqa_rad")


def test_imported_and_filtered_splits_carry_the_answer_type_rule(tmp_path):
    from medvqa.data.prepare import ImportSpec, filter_split, import_dataset

    folder = vqa_rad_release(tmp_path)
    spec = ImportSpec.from_mapping({"source": "vqa_rad", "options": {"path": str(folder)}},
                                   where="datasets.vqa_rad")
    paths = {s: tmp_path / f"source/{s}.parquet" for s in schema.SPLITS}
    import_dataset(spec, "vqa_rad", paths, tmp_path / "rejected.csv", tmp_path / "meta.json")
    filter_split(FilterSpec(), "vqa_rad", "test", paths["test"], tmp_path / "test.parquet")
    attrs = pd.read_parquet(tmp_path / "test.parquet", columns=[]).attrs
    assert attrs["answer_type_rule"] == "answer_type column of the source, lower-cased"
    assert json.loads((tmp_path / "meta.json").read_text())["test_split_rule"] == attrs["test_split_rule"]


def test_malformed_vqa_rad_json_names_dataset_file_and_place(tmp_path):
    folder = vqa_rad_release(tmp_path)
    path = folder / "VQA_RAD Dataset Public.json"
    path.write_text(path.read_text(encoding="utf-8")[:-10], encoding="utf-8")
    with pytest.raises(SourceFileError, match=r"dataset 'rad' \(source vqa_rad\): .*Public.json: invalid JSON at line 1"):
        load_source("vqa_rad", {"path": str(folder)}, "rad")
