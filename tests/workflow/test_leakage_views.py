"""Clean views (filters.leakage: drop): grid expansion, the example config's DAG, and a real
Snakemake run showing the clean view drops exactly the val/test questions on duplicated images."""

import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medvqa.config_files import expand_experiments
from medvqa.paths import image_dataset, model_dataset, source_dataset
from medvqa.workflow_config import check_config, clean_views

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]


def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_leakage_grid_makes_a_clean_view_of_the_same_source():
    config = default_config()
    config["experiments"] = [{"datasets": ["demo"], "models": ["cnn_lstm_demo"], "leakage": ["keep", "drop"],
                              "question_types": ["all", "closed"]}]
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo", "demo-clean", "demo-closed", "demo-closed-clean"]
    clean = config["datasets"]["demo-clean"]
    assert clean["filters"]["leakage"] == "drop" and source_dataset(config, "demo-clean") == "demo"
    assert image_dataset(config, "demo-clean") == "demo"  # its images are a subset of demo's
    # Same train split as its twin: scored with the twin's training runs, never trained again.
    assert model_dataset(config, "demo-clean") == "demo" and model_dataset(config, "demo-closed-clean") == "demo-closed"
    assert model_dataset(config, "demo-closed") == "demo-closed"
    assert clean_views(config, config["experiments"][0]["datasets"]) == {
        "demo-clean": "demo", "demo-closed-clean": "demo-closed"}
    check_config(config)


@pytest.mark.parametrize("written", [{}, {"question_type": "all", "language": "en", "subsample": None,
                                           "subsample_seed": 0, "subsample_splits": ["train"], "leakage": "keep"}])
def test_a_base_that_leaves_filter_defaults_unwritten_still_pairs_with_its_clean_view(written):
    config = default_config()
    config["datasets"]["demo"]["filters"] = dict(written)
    config["experiments"] = [{"datasets": ["demo"], "models": ["cnn_lstm_demo"], "leakage": ["keep", "drop"]}]
    expand_experiments(config)
    assert clean_views(config, config["experiments"][0]["datasets"]) == {"demo-clean": "demo"}


def test_clean_view_of_a_clean_base_is_called_original():
    config = default_config()
    config["datasets"]["demo"].setdefault("filters", {})["leakage"] = "drop"
    config["experiments"] = [{"datasets": ["demo"], "models": ["cnn_lstm_demo"], "leakage": ["drop", "keep"]}]
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo", "demo-original"]
    assert "images_from" not in config["datasets"]["demo-original"]  # demo lacks some of its images
    assert model_dataset(config, "demo-original") == "demo-original" and model_dataset(config, "demo") == "demo"
    assert clean_views(config, ["demo", "demo-original"]) == {"demo": "demo-original"}


def test_bad_leakage_filter_value_is_named():
    config = default_config()
    config["datasets"]["demo"].setdefault("filters", {})["leakage"] = "remove"
    with pytest.raises(ValueError, match="datasets.demo.filters: leakage='remove'"):
        check_config(config)


def job_counts(dry_run_output: str) -> dict[str, int]:
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2}


def test_clean_example_config_scores_one_model_on_both_views(tmp_path):
    result = subprocess.run([*SNAKEMAKE, str(REPO / "configs" / "clean.yaml"), "-n", "figures"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout)
    # One training run, scored on both views (each view also scores its two VQA baselines).
    assert counts["train"] == 1 and counts["predict_with_attention"] == 2 and counts["score_vqa"] == 2 + 2 * 2
    assert counts["vqa_baseline"] == 2 * 2
    assert counts["clean_table"] == 1 and counts["results_table"] == 2
    assert counts["leakage_audit"] == 1 and counts["leakage_figure"] == 1 and counts["summary"] == 1
    assert "results/tables/demo-clean/clean_vs_original.test.csv" in result.stdout


@pytest.mark.workflow
def test_clean_view_drops_exactly_the_rows_on_duplicated_images(tmp_path):
    (tmp_path / "clean.yaml").write_text(yaml.safe_dump({"experiments": [
        {"datasets": ["demo"], "models": ["cnn_lstm_demo"], "leakage": ["keep", "drop"]}]}))
    targets = [f"results/data/{d}/{s}.parquet" for d in ("demo", "demo-clean") for s in ("train", "val", "test")]
    result = subprocess.run(
        [*SNAKEMAKE, str(tmp_path / "clean.yaml"), "--cores", "2", *targets, "results/data/demo-clean/summary.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = tmp_path / "results" / "data"
    audit = json.loads((data / "demo" / "leakage.json").read_text())
    summary = json.loads((data / "demo-clean" / "summary.json").read_text())["leakage"]
    assert not (data / "demo-clean" / "leakage.json").exists()  # the view reuses its source's audit
    for split in ("train", "val", "test"):
        original = pd.read_parquet(data / "demo" / f"{split}.parquet", columns=["question_id", "image_id"])
        clean = pd.read_parquet(data / "demo-clean" / f"{split}.parquet", columns=["question_id", "image_id"])
        duplicated = set(audit["affected"].get(split, {}).get("image_ids", []))
        expected = original[~original["image_id"].isin(duplicated)]
        assert list(clean["question_id"]) == list(expected["question_id"])
        if split != "train":
            # The demo's images are views of nine base images (one a 30-frame clip): some val/test images are near
            # duplicates of train images at the default threshold, so something is dropped.
            assert duplicated and len(clean) < len(original)
            assert summary["removed"][split] == {"rows": len(original) - len(clean), "images": len(duplicated)}
    assert "1 test image(s) duplicate train images" in (tmp_path / "logs/data/demo/leakage.log").read_text()
    # The leakage figure and table reach the Snakemake report.
    report_targets = ["results/figures/demo/leakage.png", "results/tables/demo/leakage.csv"]
    for extra in ([], ["--report", "report.zip"]):
        result = subprocess.run([*SNAKEMAKE, str(tmp_path / "clean.yaml"), "--cores", "2", *report_targets, *extra],
                                cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        names = "\n".join(archive.namelist())
    assert "leakage.png" in names and "leakage.html" in names
