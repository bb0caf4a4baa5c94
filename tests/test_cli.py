"""Every stage's command line: --help names the real command and states its whole purpose."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module, sentence", [
    ("medvqa.inference.predict", "one split → ``results/predictions/{dataset}/{model}/{seed}/{split}.parquet``."),
    ("medvqa.training.train", "Training stage: data-stage outputs →"),
    ("medvqa.inference.caption", "Caption stage:"),
    ("medvqa.report", "Command line of the report stages, for use without Snakemake."),
    ("medvqa.evaluate.score", "Score predictions or generated captions into a metrics JSON."),
    ("medvqa.workflow_config", "Check workflow config files"),
])
def test_help_names_the_command_and_a_whole_sentence(module, sentence):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120,
                            env={"COLUMNS": "1000", "PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith(f"usage: python -m {module} ")
    assert sentence in " ".join(result.stdout.split())
