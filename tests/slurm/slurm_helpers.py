"""Helpers of run_slurm_test.sh: the test cluster's profile, and a data-level comparison of runs.

    python tests/slurm/slurm_helpers.py profile SRC DST KEY=VALUE... [--gpu-rule RULE]...
        Reads the repository's SLURM profile SRC (YTE template, evaluated with this environment,
        as Snakemake does), overrides top-level keys with KEY=VALUE (values parsed as YAML), adds
        `gpu: 1` to the set-resources of each --gpu-rule, and writes plain YAML to DST.
    python tests/slurm/slurm_helpers.py compare EXPECTED ACTUAL
        Compares every file under ACTUAL/results with the same file under EXPECTED/results by
        content: parquet as tables, .npy as arrays, .json as parsed JSON, anything else as bytes
        (parquet bytes differ by writer metadata even when the data are equal). Exits 1 on any
        difference or on a file missing from either side.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def derive_profile(src: Path, dst: Path, overrides: list[str], gpu_rules: list[str]) -> dict:
    import yte  # Snakemake's own profile templating engine (a snakemake dependency)

    with src.open() as stream:
        profile = yte.process_yaml(stream, require_use_yte=True)
    for item in overrides:
        key, _, value = item.partition("=")
        profile[key] = yaml.safe_load(value)
    for rule in gpu_rules:
        profile.setdefault("set-resources", {}).setdefault(rule, {})["gpu"] = 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile


def file_difference(expected: Path, actual: Path) -> str | None:
    """None when the two files hold the same data, else a one-line description."""
    if actual.name == "history.csv":
        # Wall-clock seconds per epoch differ between any two runs; everything else must not.
        try:
            drop = {"columns": ["seconds"], "errors": "ignore"}
            pd.testing.assert_frame_equal(pd.read_csv(expected).drop(**drop), pd.read_csv(actual).drop(**drop))
        except AssertionError as error:
            return str(error).splitlines()[0]
        return None
    if actual.suffix == ".parquet":
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(expected), pd.read_parquet(actual))
        except AssertionError as error:
            return str(error).splitlines()[0]
        return None
    if actual.suffix == ".npy":
        a, b = np.load(expected, mmap_mode="r"), np.load(actual, mmap_mode="r")
        same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
        return None if same else f"arrays differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    if actual.suffix == ".json":
        same = json.loads(expected.read_text()) == json.loads(actual.read_text())
        return None if same else "JSON content differs"
    return None if expected.read_bytes() == actual.read_bytes() else "bytes differ"


def _result_files(root: Path) -> set[Path]:
    # resume/ is the training loop's private restart state (not a Snakemake output): it holds
    # timings, so two equal runs never match there byte for byte.
    files = (root / "results").rglob("*")
    return {p.relative_to(root) for p in files if p.is_file() and "resume" not in p.relative_to(root).parts}


def compare_results(expected_root: Path, actual_root: Path) -> list[str]:
    """Problems found comparing the results/ trees of two runs; empty when they hold the same data."""
    expected, actual = _result_files(expected_root), _result_files(actual_root)
    problems = [f"{p}: missing from {actual_root}" for p in sorted(expected - actual)]
    problems += [f"{p}: missing from {expected_root}" for p in sorted(actual - expected)]
    for rel in sorted(expected & actual):
        difference = file_difference(expected_root / rel, actual_root / rel)
        if difference:
            problems.append(f"{rel}: {difference}")
    if not actual:
        problems.append(f"{actual_root}/results holds no files")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    profile = commands.add_parser("profile")
    profile.add_argument("src", type=Path)
    profile.add_argument("dst", type=Path)
    profile.add_argument("overrides", nargs="*")
    profile.add_argument("--gpu-rule", action="append", default=[])
    compare = commands.add_parser("compare")
    compare.add_argument("expected", type=Path)
    compare.add_argument("actual", type=Path)
    args = parser.parse_args(argv)
    if args.command == "profile":
        derive_profile(args.src, args.dst, args.overrides, args.gpu_rule)
        return 0
    problems = compare_results(args.expected, args.actual)
    for problem in problems:
        print(f"DIFFERENT {problem}", file=sys.stderr)
    n_files = len(list((args.actual / "results").rglob("*.*")))
    print(f"compared {n_files} files: {'equal' if not problems else f'{len(problems)} differ'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
