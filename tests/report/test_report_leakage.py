"""Leakage section: example-pairs figure, per-split-pair table, clean-vs-original table."""

import pandas as pd
import pytest
from PIL import Image

from planted import write_planted
from medvqa.data.leakage import LeakageSpec, audit
from medvqa.report.collect import Run
from medvqa.report.leakage import clean_table, example_pairs, leakage_figure, leakage_table
from medvqa.report.spec import FigureSpec


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("audited")
    paths = write_planted(root)
    audit(LeakageSpec(), "planted", paths, root / "leakage.json", root / "pairs.csv")
    return root, paths


def outputs(tmp_path, stem):
    return {fmt: tmp_path / f"{stem}.{fmt}" for fmt in ("csv", "md", "tex", "html")}


def test_examples_put_cross_split_exact_pairs_first(audited):
    pairs = pd.read_csv(audited[0] / "pairs.csv")
    shown = example_pairs(pairs, 4)
    assert list(zip(shown["split_a"], shown["split_b"], shown["kind"])) == [
        ("train", "test", "exact"), ("train", "test", "exact"), ("train", "test", "near"), ("train", "test", "near")]


def test_figure_shows_the_pairs_as_thumbnails(audited, tmp_path):
    root, paths = audited
    spec = FigureSpec(gallery_size=5)
    shown = leakage_figure(root / "leakage.json", root / "pairs.csv", paths, tmp_path / "l.png", tmp_path / "l.pdf",
                           spec, "planted: duplicate images")
    assert shown == 5
    with Image.open(tmp_path / "l.png") as img:
        assert img.height > img.width  # one pair per row
    assert (tmp_path / "l.pdf").stat().st_size > 0


def test_figure_without_pairs_says_so(audited, tmp_path):
    root, paths = audited
    empty = tmp_path / "pairs.csv"
    pd.read_csv(root / "pairs.csv").head(0).to_csv(empty, index=False)
    shown = leakage_figure(root / "leakage.json", empty, paths, tmp_path / "e.png", tmp_path / "e.pdf",
                           FigureSpec(), "no pairs")
    assert shown == 0 and (tmp_path / "e.png").exists()


def test_table_lists_every_split_pair_and_the_affected_share(audited, tmp_path):
    frame = leakage_table(audited[0] / "leakage.json", outputs(tmp_path, "leakage"))
    assert list(frame["split_a"] + "-" + frame["split_b"]) == [
        "train-train", "train-val", "train-test", "val-val", "val-test", "test-test"]
    train_test = frame.query("split_a == 'train' and split_b == 'test'")
    assert train_test[["exact", "near"]].values.tolist() == [[2, 2]]
    assert frame.query("split_a == 'val' and split_b == 'val'")["exact"].item() == 0
    md = (tmp_path / "leakage.md").read_text()
    assert "test: 3 image(s) duplicate a train image; 6 of 16 (37.5%) test rows" in md
    assert "6 of these questions are also asked of the train duplicate, 3 with the same answer" in md
    assert "at most 6 differing bits" in md


def metrics(em: float, n: int) -> dict:
    block = {"value": em, "ci_low": em - 0.1, "ci_high": em + 0.1, "n": n}
    return {"task": "vqa", "n": {"total": n},
            "accuracy": {"exact_match": {"overall": block, "closed": block, "open": block}}}


def test_clean_table_puts_the_views_side_by_side(tmp_path):
    original = [Run("cnn", 0, metrics(0.60, 100)), Run("only_original", 0, metrics(0.5, 100))]
    clean = [Run("cnn", 0, metrics(0.55, 90))]
    removed = {"test": {"rows": 10, "images": 2}}
    frame = clean_table(original, clean, ("demo", "demo-clean"), "test", outputs(tmp_path, "clean"), removed)
    assert frame["model"].tolist() == ["cnn"]
    row = frame.iloc[0]
    assert (row["n_original"], row["n_clean"]) == (100, 90)
    assert row["em_overall_original"] == pytest.approx(0.60) and row["em_overall_clean"] == pytest.approx(0.55)
    md = (tmp_path / "clean.md").read_text()
    assert "| cnn | 100 | 90 | 60.0 [50.0, 70.0] | 55.0 [45.0, 65.0] | -5.0 |" in md
    assert "Removed from test: 10 rows on 2 image(s)." in md
