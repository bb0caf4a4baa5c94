"""The conda environments (snakemake --sdm conda) work by construction.

Each rule's `conda:` file must list, pinned to the version in envs/constraints.txt (what CI
installs and tests), every third-party package that the rule's script imports, directly or
through the medvqa modules it reaches (function-local imports included), and must not
install the workflow's own package from a relative path (`-e ..` resolves against
.snakemake/conda/). Scripts find medvqa through workflow_scripts/medvqa, the directory
Snakemake appends to sys.path for a local script.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# Imports guarded by an optional extra or used only on some platforms.
OPTIONAL = {
    "bitsandbytes": "qlora extra, listed in envs/train.yaml all the same",
    "vllm": "vllm extra (generate.backend: vllm): it pins its own torch, so it needs an environment of its own",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_file(dotted: str) -> Path | None:
    path = REPO.joinpath(*dotted.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def imported_names(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@cache
def third_party_imports(start: Path) -> frozenset[str]:
    """Top-level third-party module names imported by ``start`` and the medvqa modules it reaches."""
    seen, found, todo = set(), set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            parts = name.split(".")
            if parts[0] == "medvqa":
                todo += [f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i])))]
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "snakemake":
                found.add(parts[0])
    return frozenset(found)


def rules_with_envs() -> list[tuple[str, str, Path]]:
    """(rule, conda env file, entry file) of every rule that names a conda environment."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            rule = re.match(r"rule (\w+):", block)
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", block)
            module = re.search(r"-m (medvqa[\w.]*)", block)
            if not (rule and conda):
                continue
            entry = (smk.parent / script.group(1)).resolve() if script else module_file(module.group(1))
            found.append((rule.group(1), conda.group(1), entry))
    return found


def env_pins(env_file: Path) -> dict[str, str]:
    spec = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip:
        assert not line.startswith("-"), f"{env_file.name}: pip option {line!r} (no relative or editable installs)"
        name, sep, version = line.partition("==")
        assert sep, f"{env_file.name}: {line!r} is not an exact pin"
        pins[canonical(name)] = version
    return pins


def constraints() -> dict[str, str]:
    lines = (REPO / "envs" / "constraints.txt").read_text().splitlines()
    return {canonical(n): v for n, _, v in (line.partition("==") for line in lines if "==" in line)}


def test_every_rule_names_an_env_that_lists_its_imports():
    rules = rules_with_envs()
    assert len(rules) >= 20, "the rule parser found too few rules"
    distributions = md.packages_distributions()
    missing = []
    for rule, env, entry in rules:
        assert entry is not None and entry.exists(), f"rule {rule}: no script or -m medvqa module found"
        pins = env_pins((REPO / "rules" / env).resolve())
        for module in sorted(third_party_imports(entry) - OPTIONAL.keys()):
            names = {canonical(d) for d in distributions.get(module, [module])}
            if not names & pins.keys():
                missing.append(f"rule {rule} imports {module} ({', '.join(sorted(names))}) but {env} lacks it")
    assert not missing, "\n".join(missing)


def test_env_pins_equal_the_tested_constraints():
    locked = constraints()
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for name, version in env_pins(env_file).items():
            assert locked.get(name) == version, f"{env_file.name}: {name}=={version}, constraints.txt has {locked.get(name)}"


def test_constraints_cover_the_installed_requirements():
    """constraints.txt was regenerated after the last dependency change (python envs/lock.py)."""
    from packaging.requirements import Requirement

    locked = constraints()
    requires = md.distribution("medvqa-workflow").requires or []
    # The vllm extra pins its own torch: it is installed in an environment of its own, never with these pins.
    direct = {canonical(Requirement(r).name) for r in requires} - {"vllm"}
    assert direct <= locked.keys(), f"not in envs/constraints.txt: {sorted(direct - locked.keys())}"


def test_scripts_import_medvqa_from_the_checkout_without_an_install():
    """What a conda job does: no site-packages (-S), the script's directory appended to sys.path."""
    code = f"import sys; sys.path.append({str(REPO / 'workflow_scripts')!r}); import medvqa; print(medvqa.__file__)"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()).resolve() == (REPO / "medvqa" / "__init__.py").resolve()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_command = next(b for b in blocks if b.endswith("&& pytest"))
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert ci_lines[-1] == test_command
