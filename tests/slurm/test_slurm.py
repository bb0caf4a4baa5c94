"""Scale-out: the SLURM and local profiles, and the demo chain on a real one-node SLURM cluster.

The cluster test (run_slurm_test.sh) needs root and apt-get, or Slurm already installed; without
them it is skipped with the reason, except under CI=true, where a skip would hide a broken
cluster path and it fails instead. The other tests need neither.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from slurm_helpers import compare_results, derive_profile  # noqa: E402

SNAKEMAKE = ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def cluster_unavailable_reason() -> str | None:
    """Why run_slurm_test.sh cannot run on this machine, or None when it can."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd and writing /etc/slurm/slurm.conf need root"
    installed = all(shutil.which(name) for name in SLURM_BINARIES)
    if not installed and not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install munge/slurmctld/slurmd"
    return None


def dry_run(tmp_path: Path, profile: str, env: dict[str, str]) -> str:
    """`snakemake --profile profiles/<profile> -n data` under exactly `env`; its output."""
    result = subprocess.run(
        [*SNAKEMAKE, "--profile", str(REPO / "profiles" / profile), "-n", "data"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout + result.stderr


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without partition/account/GPU settings of the caller's own cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "MEDVQA_"))}
    return {**env, **extra}


def resources_of(output: str, rule: str) -> str:
    """The `resources:` line of the first job of `rule` in a dry run's output."""
    block = output.split(f"rule {rule}:", 1)[1]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


def test_slurm_profile_reads_partition_and_account_from_the_environment(tmp_path):
    out = dry_run(tmp_path, "slurm", clean_env(SBATCH_PARTITION="short", SBATCH_ACCOUNT="proj42"))
    assert "mem_mb=3000" in resources_of(out, "import_dataset")
    for rule in ("import_dataset", "tokenize_split"):
        assert "slurm_partition=short" in resources_of(out, rule)
        assert "slurm_account=proj42" in resources_of(out, rule)
    out = dry_run(tmp_path, "slurm", clean_env())
    assert "slurm_partition" not in out and "slurm_account" not in out


def test_every_gpu_job_goes_to_the_gpu_partition_and_model(tmp_path):
    """MEDVQA_GPU_PARTITION / MEDVQA_GPU_MODEL reach every job that asks for a GPU, multi-GPU
    training and sharded inference included (the profile lists the GPU rules by name)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in ("cnn_lstm_demo", "blip_demo", "qwen2_vl_lora_demo"):
        config["models"][name]["train"]["gpus"] = 2
    for name in ("flamingo_demo", "blip_caption_zs"):
        config["models"][name]["shards"] = 2
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    env = clean_env(MEDVQA_GPU_PARTITION="gpuq", MEDVQA_GPU_MODEL="a100")
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(tmp_path / "grid.yaml"),
         "--profile", str(REPO / "profiles/slurm"), "-n"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    gpu_rules = set()
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        resources = next((line for line in block.splitlines() if line.strip().startswith("resources:")), "")
        if "gpu=" in resources:
            gpu_rules.add(rule)
            assert "slurm_partition=gpuq" in resources and "gpu_model=a100" in resources, (rule, resources)
    assert {"train_ddp", "train_blip_ddp", "train_vlm_ddp", "generate_answers_shard", "caption_shard"} <= gpu_rules


def test_slurm_profile_names_only_rules_of_the_workflow(tmp_path):
    profile = derive_profile(REPO / "profiles/slurm/config.yaml", tmp_path / "p/config.yaml", [], [])
    listed = subprocess.run([*SNAKEMAKE, "--list-rules"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    rules = set(listed.stdout.split())
    # Snakemake ignores set-resources of an unknown rule silently: a typo would cost a cluster run.
    assert set(profile["set-resources"]) <= rules, set(profile["set-resources"]) - rules


def test_retry_of_a_memory_hungry_rule_gets_twice_the_memory(tmp_path):
    """The profile's own `mem_mb` expression, evaluated by Snakemake on a job that fails once."""
    profile = derive_profile(REPO / "profiles/slurm/config.yaml", tmp_path / "p/config.yaml", [], [])
    assert profile["retries"] >= 1
    expression = profile["set-resources"]["import_dataset"]["mem_mb"]
    fail_first_attempt = "test -e failed_once || {{ touch failed_once; exit 1; }}"
    (tmp_path / "Snakefile").write_text(
        "rule oom_once:\n"
        "    output: 'done.txt'\n"
        f"    shell: 'echo {{resources.mem_mb}} >> asked.txt; {fail_first_attempt}; touch {{output}}'\n"
    )
    result = subprocess.run(
        ["snakemake", "--cores", "1", "--retries", str(profile["retries"]),
         "--set-resources", f"oom_once:mem_mb={expression}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "asked.txt").read_text().split() == ["3000", "6000"]  # import: 3 GB, streamed (issue 14)


def test_local_profile_parses_and_uses_one_gpu_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDVQA_GPUS", raising=False)
    assert "This was a dry-run" in dry_run(tmp_path, "local", clean_env(MEDVQA_GPUS="2"))
    profile = derive_profile(REPO / "profiles/local/config.yaml", tmp_path / "p/config.yaml", [], [])
    assert profile["cores"] == "all" and profile["resources"]["gpu"] == 1
    assert 0 < profile["resources"]["mem_mb"]


def write_results(root: Path, answers: list[str], cache: np.ndarray) -> None:
    (root / "results/data/demo").mkdir(parents=True)
    pd.DataFrame({"question_id": ["q0", "q1"], "answer": answers}).to_parquet(root / "results/data/demo/test.parquet")
    np.save(root / "results/data/demo/images_64.test.npy", cache)
    (root / "results/data/demo/answers.json").write_text('{"answers": ["no", "yes"]}')


def test_compare_results_sees_data_not_bytes(tmp_path):
    cache = np.zeros((2, 4, 4, 3), np.uint8)
    write_results(tmp_path / "a", ["yes", "no"], cache)
    write_results(tmp_path / "b", ["yes", "no"], cache)
    (tmp_path / "b/results/data/demo/answers.json").write_text('{\n  "answers": ["no", "yes"]\n}\n')
    assert compare_results(tmp_path / "a", tmp_path / "b") == []

    changed = cache.copy()
    changed[1, 0, 0, 0] = 7
    write_results(tmp_path / "c", ["yes", "yes"], changed)
    (tmp_path / "c/results/data/demo/extra.csv").write_text("x\n")
    problems = "\n".join(compare_results(tmp_path / "a", tmp_path / "c"))
    assert "test.parquet" in problems and "images_64.test.npy" in problems
    assert "extra.csv: missing from" in problems and "answers.json" not in problems


@pytest.mark.workflow
def test_demo_chain_runs_through_slurm_like_it_runs_locally(tmp_path):
    reason = cluster_unavailable_reason()
    if reason:
        if in_ci():
            pytest.fail(f"CI=true, so the SLURM test may not be skipped, but: {reason}")
        pytest.skip(reason)
    result = subprocess.run(
        ["bash", str(HERE / "run_slurm_test.sh"), str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "PASS" in output and "compared" in output
