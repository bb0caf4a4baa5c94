"""Experiment grids: question types × subsample sizes become derived dataset views."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medvqa.paths import image_dataset, source_dataset
from medvqa.config_files import expand_experiments
from medvqa.workflow_config import check_config

REPO = Path(__file__).resolve().parents[2]


def test_grid_expands_into_derived_views_that_share_the_source():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {"m": {"family": "cnn_lstm"}}
    config["experiments"] = [
        {"datasets": ["demo"], "models": ["m"], "seeds": [0, 1], "question_types": ["all", "closed"], "subsamples": [None, 500]}
    ]
    config["datasets"]["demo"]["filters"] = {"subsample_seed": 3}  # a base setting every view keeps
    before = copy.deepcopy(config["datasets"]["demo"])
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo", "demo-n500", "demo-closed", "demo-closed-n500"]
    closed = config["datasets"]["demo-closed-n500"]
    assert closed["filters"]["question_type"] == "closed" and closed["filters"]["subsample"] == 500
    assert closed["filters"]["subsample_seed"] == 3
    assert source_dataset(config, "demo-closed-n500") == "demo" and source_dataset(config, "demo") == "demo"
    # demo keeps every question, so each view's images are among demo's: the views read demo's caches.
    assert {image_dataset(config, d) for d in config["experiments"][0]["datasets"]} == {"demo"}
    assert config["datasets"]["demo"] == before  # the base view is untouched
    assert "question_types" not in config["experiments"][0]
    check_config({**config, "models": {}, "experiments": []})


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2}


def test_grid_example_expands_to_the_expected_jobs(tmp_path):
    import subprocess

    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "-n", "--configfile",
         str(REPO / "config.yaml"), str(REPO / "configs" / "grid.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout)
    runs = 1 * 1 * 3 * 2 * 2  # datasets x models x seeds x question types x subsamples
    views = 4  # demo, demo-n500, demo-closed, demo-closed-n500
    assert counts["train"] == runs
    # Each view also scores its two baselines (built from the view's own train split).
    assert counts["predict_with_attention"] == runs and counts["score_vqa"] == runs + 2 * views
    assert counts["vqa_baseline"] == 2 * views
    assert counts["filter_split"] == 3 * (views + 1)  # + demo_captions
    assert counts["import_dataset"] == 2  # demo and demo_captions only: the views share demo's
    assert counts["image_cache"] == 3  # and its image caches (demo_captions: image_cache: png)
    assert counts["image_cache_png"] == 3
    assert counts["aggregate_seeds"] == views and counts["results_table"] == views


def test_views_of_a_subsampled_base_keep_their_own_image_caches():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["demo"].setdefault("filters", {})["subsample"] = 400  # the base drops questions, maybe images
    config["experiments"] = [{"datasets": ["demo"], "models": ["cnn_lstm_demo"], "question_types": ["closed"]}]
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo-closed"]
    assert image_dataset(config, "demo-closed") == "demo-closed"


@pytest.mark.workflow
def test_a_derived_view_trains_predicts_and_draws_from_the_base_image_cache(tmp_path):
    import subprocess

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    entry = config["models"]["cnn_lstm_demo"]
    config["models"] = {"cnn_lstm_demo": {**entry, "train": {**entry["train"], "epochs": 1}}}
    config["experiments"] = [{"datasets": ["demo"], "models": ["cnn_lstm_demo"], "question_types": ["open"]}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/metrics/demo-open/cnn_lstm_demo/0/test.json",
               "results/figures/demo-open/cnn_lstm_demo/0/attention.test.png"]
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "--cores", "2", *targets],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = tmp_path / "results" / "data"
    assert not list((data / "demo-open").glob("images_*")) and list((data / "demo").glob("images_*"))
    test = pd.read_parquet(data / "demo-open" / "test.parquet")
    predictions = pd.read_parquet(tmp_path / "results/predictions/demo-open/cnn_lstm_demo/0/test.parquet")
    assert (test["answer_type"] == "open").all() and sorted(predictions["question_id"]) == sorted(test["question_id"])
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0
