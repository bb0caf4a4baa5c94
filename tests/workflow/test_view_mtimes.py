"""A filtered split that is a view (symbolic link) of its source split keeps Snakemake's
up-to-date checks right: a second run has nothing to do, and a rebuilt source reruns the filter
and what reads the view. The DAG mirrors rules/data.smk (import → leakage audit and filter →
a reader of the view); the source is larger than Snakemake's 1 MB checksum limit, so only
mtimes decide (a hard link fails here: Snakemake touches the view after its job, which moves the
shared inode's mtime, so the audit would rerun on every invocation)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parents[2]

SNAKEFILE = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, {tests!r})

    rule all:
        input: "data/audit.txt", "data/rows.txt"

    rule import_dataset:
        output: "data/source/test.parquet"
        run:
            from builders import vqa_rows
            from medvqa.io import write_parquet
            rows = vqa_rows(n_images=4, questions_per_image=2, split="test")
            rows["image"] = [os.urandom(300_000) for _ in range(len(rows))]
            write_parquet(rows, output[0])

    rule leakage_audit:
        input: "data/source/test.parquet"
        output: "data/audit.txt"
        run:
            time.sleep(1.1)
            open(output[0], "w").write("audited")

    rule filter_split:
        input: source="data/source/test.parquet", audit="data/audit.txt"
        output: "data/test.parquet"
        run:
            time.sleep(1.1)
            from medvqa.data.prepare import FilterSpec, filter_split
            filter_split(FilterSpec(language="all"), "d", "test", input.source, output[0])

    rule read_view:
        input: "data/test.parquet"
        output: "data/rows.txt"
        run:
            import pandas as pd
            open(output[0], "w").write(str(pd.read_parquet(input[0])["image"].map(len).sum()))
''')


def snakemake(work: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_view_is_up_to_date_after_its_run_and_follows_a_rebuilt_source(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(tests=str(REPO / "tests")))
    snakemake(tmp_path)
    view, source = tmp_path / "data" / "test.parquet", tmp_path / "data" / "source" / "test.parquet"
    assert view.is_symlink() and source.stat().st_size > 2_000_000
    assert "Nothing to be done" in snakemake(tmp_path, "-n")
    old = source.read_bytes()
    snakemake(tmp_path, "--force", "data/source/test.parquet")  # a rebuilt source, nothing else
    plan = snakemake(tmp_path, "-n")
    for rule in ("leakage_audit", "filter_split", "read_view"):
        assert f"rule {rule}:" in plan, plan
    snakemake(tmp_path)
    assert view.is_symlink() and view.read_bytes() == source.read_bytes() != old
    assert "Nothing to be done" in snakemake(tmp_path, "-n")
