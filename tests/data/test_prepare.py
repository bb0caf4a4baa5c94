"""Filters (question type, language, seeded subsample) and their specs; a split that keeps every
row is a view (symbolic link) of its source split."""

import os

import pandas as pd
import pytest

from builders import vqa_rows
from medvqa.data.prepare import FilterSpec, filter_rows, filter_split, view_storage, write_view
from medvqa.spec import ConfigError


def test_question_type_and_language_filters():
    rows = vqa_rows(n_images=10)
    closed = filter_rows(rows, FilterSpec(question_type="closed", language="all"), "train")
    assert set(closed["answer_type"]) == {"closed"} and len(closed) == (rows["answer_type"] == "closed").sum()
    english = filter_rows(rows, FilterSpec(language="en"), "train")
    assert set(english["q_lang"]) == {"en"}
    assert len(filter_rows(rows, FilterSpec(language="all"), "train")) == len(rows)


def test_subsample_is_deterministic_by_seed_and_split():
    rows = vqa_rows(n_images=20)
    spec = FilterSpec(language="all", subsample=15, subsample_seed=3)
    first = filter_rows(rows, spec, "train")
    again = filter_rows(rows.sample(frac=1, random_state=9), spec, "train")
    assert len(first) == 15
    assert set(first["question_id"]) == set(again["question_id"])  # row order does not matter
    other = filter_rows(rows, FilterSpec(language="all", subsample=15, subsample_seed=4), "train")
    assert set(other["question_id"]) != set(first["question_id"])
    assert len(filter_rows(rows, spec, "test")) == len(rows)  # test not in subsample_splits


def test_filter_spec_rejects_unknown_and_bad_values():
    with pytest.raises(ConfigError, match="'langauge'"):
        FilterSpec.from_mapping({"langauge": "en"}, where="datasets.demo.filters")
    with pytest.raises(ConfigError, match="question_type"):
        FilterSpec.from_mapping({"question_type": "yesno"})
    with pytest.raises(ConfigError, match="subsample_splits"):
        FilterSpec.from_mapping({"subsample_splits": ["validation"]})


def test_filter_split_refuses_to_write_nothing(tmp_path):
    src = tmp_path / "source.parquet"
    vqa_rows().assign(answer_type="closed").to_parquet(src)
    with pytest.raises(ValueError, match="left no rows"):
        filter_split(FilterSpec(question_type="open"), "d", "train", src, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    filter_split(FilterSpec(question_type="closed", language="all"), "d", "train", src, tmp_path / "out.parquet")
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == len(vqa_rows())


def test_a_language_name_is_refused_at_load_and_an_empty_filter_lists_the_values_present(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets.demo.filters: language='english' is not 'all' or a language code"):
        FilterSpec.from_mapping({"language": "english"}, where="datasets.demo.filters")
    assert FilterSpec.from_mapping({"language": "pt-BR"}).language == "pt-BR"
    src = tmp_path / "source.parquet"
    vqa_rows().to_parquet(src)  # q_lang en and zh
    with pytest.raises(ValueError, match=r"left no rows of 18 \(answer_type values present: closed, open; "
                                         r"q_lang values present: en, zh\)"):
        filter_split(FilterSpec(language="fr"), "d", "train", src, tmp_path / "out.parquet")


def test_summary_states_the_filters_and_the_rows_each_one_dropped(tmp_path):
    """Issue 13: summary.json says which language (and other filters) a view kept, and what they dropped."""
    from medvqa.data.summary import summarise

    filters = FilterSpec.from_mapping({"language": "en", "question_type": "closed"})
    sources, views = {}, {}
    for split in ("train", "val", "test"):
        sources[split] = tmp_path / f"source_{split}.parquet"
        views[split] = tmp_path / f"{split}.parquet"
        vqa_rows(n_images=4, questions_per_image=3, split=split).to_parquet(sources[split])  # q 0, 1: en; q 2: zh
        filter_split(filters, "mine", split, sources[split], views[split])
    pd.DataFrame(columns=["split", "id", "reason"]).to_csv(tmp_path / "rejected.csv", index=False)
    (tmp_path / "meta.json").write_text('{"source": "local"}')
    summary = summarise("mine", views, tmp_path / "rejected.csv", tmp_path / "meta.json", tmp_path / "s.json",
                        filters=filters, source_paths=sources)
    stated = summary["filters"]
    assert stated["settings"]["language"] == "en" and stated["settings"]["question_type"] == "closed"
    # Per image: q0 closed/en (kept), q1 open/en (question type drops it), q2 closed/zh (language drops it).
    assert stated["splits"]["test"] == {
        "imported": 12, "kept": 4, "dropped": {"question_type": 4, "language": 4, "leakage": 0, "subsample": 0},
        "storage": "copy",
    }
    assert summary["splits"]["test"]["rows"] == 4  # the view's own count agrees


def _view_case(tmp_path):
    source = tmp_path / "source" / "test.parquet"
    source.parent.mkdir()
    vqa_rows(n_images=4, questions_per_image=3, split="test").to_parquet(source)  # q 2 of each image: zh
    return source, tmp_path / "test.parquet"


def test_a_split_that_keeps_every_row_is_a_view_of_the_source_not_a_copy(tmp_path):
    source, view = _view_case(tmp_path)
    before = source.stat()
    assert filter_split(FilterSpec(language="all"), "d", "test", source, view) == 12
    assert view.is_symlink() and os.readlink(view) == "source/test.parquet"  # relative: results/ can move
    assert os.path.samefile(view, source)
    pd.testing.assert_frame_equal(pd.read_parquet(view), pd.read_parquet(source))
    assert (source.stat().st_ino, source.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # Filters that now drop rows replace the link by a copy of the rows kept; the source stays.
    assert filter_split(FilterSpec(language="en"), "d", "test", source, view) == 8
    assert not view.is_symlink() and not os.path.samefile(view, source)
    expected = filter_rows(pd.read_parquet(source), FilterSpec(language="en"), "test")
    pd.testing.assert_frame_equal(pd.read_parquet(view), expected)
    assert source.stat().st_mtime_ns == before.st_mtime_ns and len(pd.read_parquet(source)) == 12
    assert view_storage(view, source) == "copy"


def test_a_view_is_a_copy_where_symbolic_links_fail(tmp_path, monkeypatch):
    source, view = _view_case(tmp_path)

    def no_symlinks(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assert write_view(source, view) == "copy"
    assert not view.is_symlink() and view.read_bytes() == source.read_bytes()
    assert view_storage(view, source) == "copy"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_summary_says_which_splits_are_views(tmp_path):
    from medvqa.data.summary import summarise

    filters = FilterSpec(language="all", question_type="closed")
    sources, views = {}, {}
    for split in ("train", "val", "test"):
        sources[split] = tmp_path / f"source_{split}.parquet"
        views[split] = tmp_path / f"{split}.parquet"
        rows = vqa_rows(n_images=4, questions_per_image=3, split=split)
        # val and test hold closed questions only: nothing dropped there
        (rows if split == "train" else rows[rows["answer_type"] == "closed"]).to_parquet(sources[split])
        filter_split(filters, "mine", split, sources[split], views[split])
    pd.DataFrame(columns=["split", "id", "reason"]).to_csv(tmp_path / "rejected.csv", index=False)
    (tmp_path / "meta.json").write_text('{"source": "local"}')
    summary = summarise("mine", views, tmp_path / "rejected.csv", tmp_path / "meta.json", tmp_path / "s.json",
                        filters=filters, source_paths=sources)
    storage = {split: stated["storage"] for split, stated in summary["filters"]["splits"].items()}
    assert storage == {"train": "copy", "val": "symlink", "test": "symlink"}
