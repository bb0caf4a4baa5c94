"""rules/evaluate.smk and rules/figures.smk under real Snakemake on a fake results tree.

A minimal Snakefile in a temporary directory includes rules/common.smk (input functions, wildcard
constraints) and the baseline, evaluation and figure rule files, asks for every
evaluation, figure and table target (the baselines' predictions come from rules/baselines.smk);
then `snakemake --report` must embed each of them.
"""

import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow

SNAKEFILE = f"""
configfile: "config.yaml"


include: "{REPO}/rules/common.smk"
include: "{REPO}/rules/baselines.smk"
include: "{REPO}/rules/evaluate.smk"
include: "{REPO}/rules/figures.smk"


report: "{REPO}/report/workflow.rst"


rule all:
    input:
        targets.evaluate_targets(config),
        targets.figure_targets(config),


rule figures:
    input:
        targets.figure_targets(config),
"""
CONFIG = {
    "datasets": {"vqa": {"task": "vqa", "image_size": 16}, "cap": {"task": "caption", "image_size": 16}},
    # cnn and clip are trained (train: block, so training curves); capm captions zero-shot.
    "models": {
        "cnn": {"family": "cnn_lstm", "train": {}},
        "clip": {"family": "clip_classifier", "train": {}},
        "capm": {"family": "blip"},
    },
    "experiments": [
        {"datasets": ["vqa"], "models": ["cnn"], "seeds": [0, 1]},
        {"datasets": ["vqa"], "models": ["clip"], "seeds": [0]},
        {"datasets": ["cap"], "models": ["capm"], "seeds": [0]},
    ],
    "evaluate": {"bootstrap_resamples": 1000, "n_bins": 10, "llava_med_candidates": {"vqa": "candidate.json"}},
    "report": {
        "splits": ["test"],
        "figures": {"gallery_size": 2, "attention_size": 3, "dpi": 50},
        "published": [{"dataset": "vqa", "source": "LLaVA-Med (Li et al. 2023)", "protocol": "llava_med",
                       "metric": "llava_med_open",
                       "value": 64.75, "note": "open-set recall"}],
    },
}


def snakemake(work, *args):
    result = subprocess.run(["snakemake", "--cores", "1", *args], cwd=work, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, fake_tree_writer):
    work = tmp_path_factory.mktemp("report_wf")
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    (work / "candidate.json").write_text(json.dumps({"0": ["yes", "no", "liver", "lung"]}))
    fake_tree_writer(work)
    snakemake(work, "all")
    return work


def test_every_target_is_built(workdir):
    res = workdir / "results"
    for path in ("metrics/vqa/cnn/1/test.json", "metrics/vqa/cnn/test.seeds.json", "metrics/vqa/mcnemar.test.csv",
                 "metrics/cap/capm/0/test.json", "figures/vqa/cnn/curves.pdf", "figures/vqa/cnn/0/attention.test.pdf",
                 "figures/vqa/clip/0/reliability.test.pdf", "figures/cap/capm/0/gallery.test.pdf",
                 "figures/vqa/comparison.test.pdf", "figures/cap/comparison.test.pdf",
                 "tables/vqa/results.test.tex", "tables/cap/results.test.md", "tables/vqa/published.test.csv",
                 "predictions/vqa/baseline-question-only/0/test.parquet", "metrics/vqa/baseline-majority/0/test.json",
                 "captions/cap/baseline-nearest-caption/0/test.parquet",
                 "metrics/cap/baseline-frequent-caption/0/test.json", "tables/vqa/mcnemar.test.html"):
        assert (res / path).stat().st_size > 0, path
    assert not (res / "figures/vqa/clip/0/attention.test.png").exists()  # not a cnn_lstm model
    metrics = json.loads((res / "metrics/vqa/cnn/0/test.json").read_text())
    assert metrics["spec"]["n_bins"] == 10  # config["evaluate"] reached the scoring spec
    # The dataset's LLaVA-Med candidate file is an input of its score jobs: the open accuracy row.
    assert metrics["protocol"]["llava_med_candidates"]["file"] == "candidate.json"
    assert metrics["spec"]["llava_med_candidates"] == {"vqa": "candidate.json"}  # the spec states it too
    assert metrics["accuracy"]["llava_med"]["open_accuracy"]["n"] == metrics["n"]["open"]
    model = metrics["provenance"]["model"]  # the rule's model_run params reached the provenance
    assert (model["name"], model["seed"], model["family"]) == ("cnn", 0, "cnn_lstm")
    assert (workdir / "logs/metrics/vqa/cnn/0/test.log").exists()
    table = pd.read_csv(res / "tables/vqa/results.test.csv")
    # The baselines (rules/baselines.smk) are rows of every results table, after the models.
    assert list(table["model"]) == ["cnn", "clip", "baseline-majority", "baseline-question-only"]
    assert list(table["n_seeds"]) == [2, 1, 1, 1]
    captions = pd.read_csv(res / "tables/cap/results.test.csv")
    assert list(captions["model"]) == ["capm", "baseline-frequent-caption", "baseline-nearest-caption"]


def test_figures_target_is_up_to_date_and_needs_no_model(workdir):
    out = snakemake(workdir, "-n", "figures")
    assert "Nothing to be done" in out
    (workdir / "results/figures/vqa/comparison.test.png").unlink()
    out = snakemake(workdir, "-n", "figures")
    assert "comparison_bars" in out and "score_vqa" not in out
    snakemake(workdir, "figures")
    assert (workdir / "results/figures/vqa/comparison.test.png").exists()


def test_a_changed_candidate_file_rescores_its_dataset_only(workdir):
    candidates = workdir / "candidate.json"
    text = candidates.read_text()
    candidates.write_text(json.dumps({"0": ["lung", "liver"]}))
    try:
        out = snakemake(workdir, "-n", "all")
    finally:
        candidates.write_text(text)
        snakemake(workdir, "all")
    assert "score_vqa" in out and "score_captions" not in out


def test_report_contains_every_figure_and_table(workdir):
    snakemake(workdir, "all", "--report", "report.zip")
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = "\n".join(archive.namelist())
    for name in ("curves.png", "reliability.test.png", "attention.test.png", "gallery.test.png",
                 "comparison.test.png", "results.test.html", "published.test.html", "mcnemar.test.csv",
                 "mcnemar.test.html"):
        assert name in names, name
    snakemake(workdir, "all", "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "reliability.test.png" in html and "Reliability diagram of" in html


def test_rule_files_lint_clean(workdir):
    result = subprocess.run(["snakemake", "--lint"], cwd=workdir, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    # The test Snakefile itself (absolute include paths) is not the product; the rule files are.
    for name in ("common.smk", "baselines.smk", "evaluate.smk", "figures.smk"):
        assert f"Lints for snakefile {REPO}/rules/{name}" not in out, out[-3000:]
    assert "Lints for rule" not in out, out[-3000:]
