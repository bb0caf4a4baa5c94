"""The whole demo DAG (`all`) with real Snakemake, then the HTML report.

Every model entry of config.yaml is trained for one epoch (the accuracy targets live in
bench/bench_demo_training.py, not here); everything else is the default config.
"""

import copy
import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.workflow


def one_epoch_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    fast = copy.deepcopy(config)
    for entry in fast["models"].values():
        if "train" in entry:
            entry["train"] = {**entry["train"], "epochs": 1}
    return fast


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    config = one_epoch_config()
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    result = subprocess.run([*snakemake, "--cores", "2", "all"], cwd=work, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stderr[-4000:]
    report = subprocess.run([*snakemake, "--report", "report.zip"], cwd=work, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-4000:]
    return work, config


def runs(config):
    return [(d, m) for e in config["experiments"] for d in e["datasets"] for m in e["models"]]


def test_every_model_entry_is_scored(demo_run):
    work, config = demo_run
    for dataset, model in runs(config):
        metrics = json.loads((work / f"results/metrics/{dataset}/{model}/0/test.json").read_text())
        if metrics["task"] == "vqa":
            predictions = pd.read_parquet(work / f"results/predictions/{dataset}/{model}/0/test.parquet")
            test = pd.read_parquet(work / f"results/data/{dataset}/test.parquet")
            assert sorted(predictions["question_id"]) == sorted(test["question_id"])
            assert predictions["confidence"].between(0, 1).all(), model
            assert 0 <= metrics["accuracy"]["exact_match"]["overall"]["value"] <= 1
        else:
            captions = pd.read_parquet(work / f"results/captions/{dataset}/{model}/0/test.parquet")
            assert captions["image_id"].is_unique and len(captions) > 0
            assert "rouge_l" in metrics
            assert metrics["coco"]["cider_d"]["value"] is not None and metrics["coco"]["cider_d"]["n"] > 0
            assert metrics["imageclef"]["rouge_1"]["ci_low"] is not None
            # A trained entry captions from its own run directory; the others zero-shot.
            log = (work / f"logs/captions/{dataset}/{model}/0/test.log").read_text()
            run = f"results/models/{dataset}/{model}/0"
            assert (f"captioner from {run}" in log) == ("train" in config["models"][model]), model


def test_report_contains_every_model_figure_and_table(demo_run):
    work, config = demo_run
    with zipfile.ZipFile(work / "report.zip") as archive:
        # The report stores each item under a hashed folder: count the items by file name.
        names = [Path(name).name for name in archive.namelist()]
        html = archive.read("report/report.html").decode()
    all_runs = runs(config)
    vqa = [(d, m) for d, m in all_runs if config["datasets"][d].get("task", "vqa") == "vqa"]
    trained = {(d, m) for d, m in all_runs if "train" in config["models"][m]
               and "train" in config["models"][m]}
    datasets = {d for d, _ in all_runs}
    assert names.count("reliability.test.png") == len(vqa)
    assert names.count("gallery.test.png") == len(all_runs) - len(vqa)
    assert names.count("curves.png") == len(trained)
    assert names.count("attention.test.png") == 1  # the one CNN-LSTM run
    assert names.count("comparison.test.png") == names.count("results.test.html") == len(datasets)
    for _, model in all_runs:
        assert model in html, model
    table = pd.read_csv(work / "results/tables/demo/results.test.csv")
    models = table.loc[table["kind"] == "model", "model"]
    assert sorted(models) == sorted(m for d, m in all_runs if d == "demo")
    # The baselines are rows of every results table too (rules/baselines.smk).
    assert list(table.loc[table["kind"] == "baseline", "model"]) == ["baseline-majority", "baseline-question-only"]
