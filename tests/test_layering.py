"""The package's layering, read statically (no module is imported, so no torch): every ``medvqa``
module is parsed with ``ast`` and each import it can run, at module level or inside a function, is
an edge of the import graph. Imports under ``if TYPE_CHECKING:`` never run and are left out.

Asserted: no import cycles; ``medvqa.models`` imports nothing from the stages built on it
(training, inference, evaluate, report); ``medvqa.inference`` nothing from ``medvqa.training``; no
product module imports ``medvqa.demo`` (the offline demo and the tiny stand-ins); ``medvqa`` never
imports snakemake.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medvqa"

# (importer prefix, imported prefixes it must not reach): the dependencies run one way.
FORBIDDEN = (
    ("medvqa.models", ("medvqa.training", "medvqa.inference", "medvqa.evaluate", "medvqa.report")),
    ("medvqa.inference", ("medvqa.training",)),
)


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under the package directory ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imported_names(module: str, path: Path, is_package: bool) -> set[str]:
    """Dotted names ``module`` imports at run time (``from a import b`` gives ``a.b``, a module or an
    attribute of ``a``; relative imports resolved against the module's package)."""
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports: the longest module prefix of each imported name,
    and the packages above it, which the import runs first, except a package the importer lies
    inside (it is already initialising when the importer runs)."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in imported_names(module, path, path.name == "__init__.py"):
            parts = name.split(".")
            found = [".".join(parts[:end]) for end in range(1, len(parts) + 1) if ".".join(parts[:end]) in modules]
            if not found:
                continue
            packages = [p for p in found[:-1] if not (module == p or module.startswith(p + "."))]
            edges.update(target for target in [*packages, found[-1]] if target != module)
        graph[module] = edges
    return graph


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """Module → the top-level names of everything it imports (standard library included)."""
    return {module: {name.split(".")[0] for name in imported_names(module, path, path.name == "__init__.py")}
            for module, path in module_files(root).items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """'importer -> imported' for each edge that breaks FORBIDDEN or reaches medvqa.demo from outside it."""
    bad = []
    for module, edges in sorted(graph.items()):
        for target in sorted(edges):
            rules = [forbidden for importer, forbidden in FORBIDDEN if _within(module, importer)]
            if any(_within(target, prefix) for forbidden in rules for prefix in forbidden):
                bad.append(f"{module} -> {target}")
            elif _within(target, "medvqa.demo") and not _within(module, "medvqa.demo"):
                bad.append(f"{module} -> {target} (product modules do not import the demo)")
    return bad


def test_the_graph_sees_every_module_and_function_local_imports():
    graph = import_graph(PACKAGE)
    assert {"medvqa.models", "medvqa.training.engine", "medvqa.demo.tiny_vlm"} <= set(graph)
    # captions.py imports cider only inside the function that scores captions (to keep scipy lazy).
    assert "medvqa.evaluate.cider" in graph["medvqa.evaluate.captions"]


def test_no_import_cycles():
    assert find_cycle(import_graph(PACKAGE)) is None, " -> ".join(find_cycle(import_graph(PACKAGE)))


def test_dependencies_run_one_way_and_the_demo_stays_outside_the_product():
    assert layer_violations(import_graph(PACKAGE)) == []


def test_the_package_never_imports_snakemake():
    assert [m for m, names in third_party_imports(PACKAGE).items() if "snakemake" in names] == []


@pytest.fixture
def planted(tmp_path) -> Path:
    """A toy ``medvqa`` with one violation of each kind (a checker that finds none is broken)."""
    files = {
        "__init__.py": "",
        "models/__init__.py": "from medvqa.models.a import A\n",
        "models/a.py": "def f():\n    from medvqa.training.t import T\n    return T\nA = 1\n",
        "training/__init__.py": "",
        "training/t.py": "from medvqa.models import A\nT = A\n",
        "inference/__init__.py": "",
        "inference/p.py": "from ..training import t\nfrom medvqa.demo import tiny\n",
        "demo/__init__.py": "",
        "demo/tiny.py": "import snakemake\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from medvqa.inference import p\n",
    }
    for name, text in files.items():
        (tmp_path / "medvqa" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "medvqa" / name).write_text(text)
    return tmp_path / "medvqa"


def test_the_checks_find_planted_violations(planted):
    graph = import_graph(planted)
    # models -> models.a -> (function-local) training.t -> models: the cycle the package once hid.
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and set(cycle) == {"medvqa.models", "medvqa.models.a", "medvqa.training.t"}
    assert layer_violations(graph) == [
        "medvqa.inference.p -> medvqa.demo (product modules do not import the demo)",
        "medvqa.inference.p -> medvqa.demo.tiny (product modules do not import the demo)",
        "medvqa.inference.p -> medvqa.training",
        "medvqa.inference.p -> medvqa.training.t",
        "medvqa.models.a -> medvqa.training",
        "medvqa.models.a -> medvqa.training.t",
    ]
    assert "medvqa.inference.p" not in graph["medvqa.demo.tiny"]  # TYPE_CHECKING-only import
    assert "snakemake" in third_party_imports(planted)["medvqa.demo.tiny"]
