"""The real Snakemake DAG of the data stages on the embedded demo config."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory where `snakemake data` has run once on the default config."""
    work = tmp_path_factory.mktemp("wf")
    result = subprocess.run([*SNAKEMAKE, "--cores", "2", "data"], cwd=work, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_data_outputs_follow_the_path_grammar(workdir):
    root = workdir / "results" / "data" / "demo"
    splits = {s: pd.read_parquet(root / f"{s}.parquet") for s in ("train", "val", "test")}
    images = {s: set(df["image_id"]) for s, df in splits.items()}
    assert not (images["train"] & images["test"]) and not (images["train"] & images["val"])
    for split, rows in splits.items():
        cache = np.load(root / f"images_64.{split}.npy", mmap_mode="r")
        ids = json.loads((root / f"images_64.{split}.ids.json").read_text())
        assert cache.shape == (len(ids), 64, 64, 3) and cache.dtype == np.uint8
        assert set(ids) == set(rows["image_id"])
        tokens = pd.read_parquet(root / "tokens" / f"words.{split}.parquet")
        assert list(tokens["question_id"]) == list(rows["question_id"])
    summary = json.loads((root / "summary.json").read_text())
    assert summary["splits"]["train"]["rows"] == len(splits["train"])
    assert summary["image_storage"]["cache"] == "raw"
    captions = workdir / "results" / "data" / "demo_captions"  # config.yaml: image_cache: png
    assert (captions / "images_64.test.png.arrow").exists() and not (captions / "images_64.test.npy").exists()
    assert json.loads((captions / "summary.json").read_text())["image_storage"]["cache"] == "png"
    assert summary["baselines"]["test"]["question_only"]["overall"] < 0.6
    assert (workdir / "logs" / "data" / "demo" / "import.log").exists()
    captions = pd.read_parquet(workdir / "results" / "data" / "demo_captions" / "test.parquet")
    assert set(captions.columns) >= {"image_id", "image", "caption", "split"}


def test_second_run_has_nothing_to_do(workdir):
    result = subprocess.run([*SNAKEMAKE, "-n", "data"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_lint_is_clean(workdir):
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "good condition" in result.stdout + result.stderr, result.stdout


def test_changing_one_filter_rebuilds_only_that_dataset(workdir, tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["demo"].setdefault("filters", {})["question_type"] = "closed"
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [*SNAKEMAKE[:3], "--configfile", str(tmp_path / "changed.yaml"), "-n", "data"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0
    assert "filter_split" in out and "import_dataset" not in out
    assert "demo_captions" not in out.split("Job stats")[0]


def test_workflow_files_are_snakefmt_clean():
    """The Snakefile and rules/ are formatted by snakefmt (line length in pyproject.toml)."""
    result = subprocess.run(["snakefmt", "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_one_line_docstring_and_a_script_named_after_it():
    import re

    missing, misnamed = [], []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |use rule )", smk.read_text()):
            head = re.match(r'(?:rule (\w+):|use rule \w+ as (\w+) with:)\n(\s*""".*?"""\n)?', block)
            if not head:
                continue
            name = head.group(1) or head.group(2)
            if not head.group(3):
                missing.append(f"{smk.name}:{name}")
            script = re.search(r'script:\n\s*"\.\./workflow_scripts/(\w+)\.py"', block)
            shared = {"predict", "caption", "train", "baselines", "merge_shards"}  # scripts several rules run
            if script and script.group(1) != name and script.group(1) not in shared:
                misnamed.append(f"{name} runs {script.group(1)}.py")
    assert not missing and not misnamed, (missing, misnamed)
