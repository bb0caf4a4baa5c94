"""Experiment grids: question types × subsample sizes become derived dataset views."""

import copy
from pathlib import Path

import yaml

from medvqa.workflow_config import check_config, expand_experiments, source_dataset

REPO = Path(__file__).resolve().parents[2]


def test_grid_expands_into_derived_views_that_share_the_source():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {"m": {"family": "cnn_lstm"}}
    config["experiments"] = [
        {"datasets": ["demo"], "models": ["m"], "seeds": [0, 1], "question_types": ["all", "closed"], "subsamples": [None, 500]}
    ]
    before = copy.deepcopy(config["datasets"]["demo"])
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo", "demo-n500", "demo-closed", "demo-closed-n500"]
    closed = config["datasets"]["demo-closed-n500"]
    assert closed["filters"]["question_type"] == "closed" and closed["filters"]["subsample"] == 500
    assert closed["filters"]["subsample_seed"] == before["filters"]["subsample_seed"]
    assert source_dataset(config, "demo-closed-n500") == "demo" and source_dataset(config, "demo") == "demo"
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
    assert counts["predict_with_attention"] == runs and counts["score_vqa"] == runs
    assert counts["filter_split"] == 3 * (views + 1)  # + demo_captions
    assert counts["import_dataset"] == 2  # demo and demo_captions only: the views share demo's
    assert counts["aggregate_seeds"] == views and counts["results_table"] == views
