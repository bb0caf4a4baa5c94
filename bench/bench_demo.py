"""Cold demo benchmark: wall time, job count and CPU seconds of `snakemake --cores N all`.

Copies nothing: runs the repository's Snakefile with the default config in a fresh working
directory (so every output, tiny checkpoints included, is built from scratch), then prints
one JSON line and writes it to ``--out``/bench_demo.json. CPU seconds are those of every
process the run waited for (Snakemake and all its jobs, from getrusage(RUSAGE_CHILDREN)).
Report the machine's load beside the figures (`uptime` before and after is printed).

    python bench/bench_demo.py --cores 2 --out /tmp/medvqa-demo-bench
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "unknown"


def run_demo(workdir: Path, cores: int, target: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
        str(REPO / "config.yaml"), "--directory", str(workdir), "--cores", str(cores), target,
    ]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (workdir / "snakemake.out").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed (exit {done.returncode}); see {workdir / 'snakemake.out'}")
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", done.stdout + done.stderr)
    return {
        "target": target,
        "cores": cores,
        "wall_s": round(wall, 1),
        "jobs": int(steps[-1][1]) if steps else None,
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "max_rss_mb": round(after.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--target", default="all")
    parser.add_argument("--out", type=Path, default=Path("/tmp/medvqa-demo-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "work"
    if workdir.exists():
        raise SystemExit(f"{workdir} exists: a cold run needs an empty directory")
    workdir.mkdir()
    load_before = load()
    result = run_demo(workdir, args.cores, args.target) | {"load_before": load_before, "load_after": load()}
    (args.out / "bench_demo.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
