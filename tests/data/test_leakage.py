"""Leakage audit: planted exact and near duplicates within and across splits are all found, and
distinct photographs (two of them with identical file sizes) never pair."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from planted import EXPECTED_PAIRS, planted_images, write_planted
from medvqa.data.leakage import LeakageSpec, audit, fingerprint, near_pairs, normalise_question
from medvqa.data.prepare import FilterSpec, filter_split
from medvqa.data.summary import summarise
from medvqa.spec import ConfigError

@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted dataset as split parquets (two row groups each) and its audit."""
    root = tmp_path_factory.mktemp("leak")
    paths = write_planted(root)
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


@pytest.mark.parametrize("block_elements", [1 << 23, 300 * 2 * 7])  # one block; blocks of 7 rows
def test_blocked_hamming_search_equals_brute_force(monkeypatch, block_elements):
    monkeypatch.setattr("medvqa.data.leakage.BLOCK_ELEMENTS", block_elements)
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


AFFECTED = {"val": {"v-astronaut-jpeg"}, "test": {"x-camera-webp", "x-chelsea-crop", "x-coffee-small"}}


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_clean_filter_drops_exactly_the_val_test_rows_on_duplicated_images(tmp_path, planted, split):
    root, paths, _ = planted
    out = tmp_path / f"{split}.parquet"
    filter_split(FilterSpec(leakage="drop"), "planted", split, paths[split], out, root / "leakage.json")
    source, kept = pd.read_parquet(paths[split]), pd.read_parquet(out)
    expected = source[~source["image_id"].isin(AFFECTED.get(split, set()))]
    assert list(kept["question_id"]) == list(expected["question_id"])
    assert len(source) - len(kept) == 2 * len(AFFECTED.get(split, set()))


def test_keep_filter_ignores_the_audit_and_drop_needs_it(tmp_path, planted):
    _, paths, _ = planted
    assert filter_split(FilterSpec(), "planted", "test", paths["test"], tmp_path / "t.parquet") == 16
    with pytest.raises(ValueError, match="filters.leakage is drop but no leakage.json"):
        filter_split(FilterSpec(leakage="drop"), "planted", "test", paths["test"], tmp_path / "t.parquet")


def test_summary_states_what_the_clean_view_removed(tmp_path, planted):
    root, paths, _ = planted
    spec = FilterSpec(leakage="drop", question_type="closed")
    views = {}
    for split in paths:
        views[split] = tmp_path / f"{split}.parquet"
        filter_split(spec, "planted-clean", split, paths[split], views[split], root / "leakage.json")
    pd.DataFrame(columns=["dataset", "split", "id", "reason"]).to_csv(tmp_path / "rejected.csv", index=False)
    (tmp_path / "meta.json").write_text("{}")
    summary = summarise("planted-clean", views, tmp_path / "rejected.csv", tmp_path / "meta.json",
                        tmp_path / "summary.json", root / "leakage.json", spec, paths)
    leakage = summary["leakage"]
    assert leakage["filter"] == "drop" and leakage["hash"]["threshold"] == 6
    # closed questions only: one per image
    assert leakage["removed"] == {"val": {"rows": 1, "images": 1}, "test": {"rows": 3, "images": 3}}
    assert leakage["on_duplicated_images"]["test"] == {"rows": 0, "share": 0.0}
    assert leakage["pairs"]["train-test"]["exact"] == 2


def test_summary_of_the_original_view_counts_rows_on_duplicated_images(tmp_path, planted):
    root, paths, _ = planted
    pd.DataFrame(columns=["dataset", "split", "id", "reason"]).to_csv(tmp_path / "rejected.csv", index=False)
    (tmp_path / "meta.json").write_text("{}")
    summary = summarise("planted", paths, tmp_path / "rejected.csv", tmp_path / "meta.json",
                        tmp_path / "summary.json", root / "leakage.json", FilterSpec(), paths)
    assert summary["leakage"]["on_duplicated_images"]["test"] == {"rows": 6, "share": 6 / 16}
    assert "removed" not in summary["leakage"]


def test_lookup_popcount_equals_numpy():
    from medvqa.data.leakage import _BYTE_BITS

    words = np.random.default_rng(1).integers(0, 2**63, size=(50, 3), dtype=np.uint64)
    table = _BYTE_BITS[words.view(np.uint8)].reshape(50, 3, 8).sum(axis=-1)
    assert (table == np.bitwise_count(words)).all()


def test_command_line_writes_the_same_audit(tmp_path, planted):
    from medvqa.data.leakage import main

    root, paths, report = planted
    main([*(a for s, p in paths.items() for a in ("--split", f"{s}={p}")), "--dataset", "planted",
          "--spec", '{"threshold": 6}', "--out-json", str(tmp_path / "l.json"), "--out-pairs", str(tmp_path / "p.csv")])
    assert json.loads((tmp_path / "l.json").read_text()) == json.loads((root / "leakage.json").read_text())
