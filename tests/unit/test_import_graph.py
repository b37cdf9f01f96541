"""Imports run one way: pipeline -> components -> videogen, read from the source (every ``import``, the ones inside
functions included), so an import that only runs when a command runs counts as much as one at the top of a file.

The library imports nothing of the orchestration side (kfp, ``pipeline``, ``components``), and no chain of imports
between the modules of the three packages comes back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("videogen", "components", "pipeline")
LIBRARY_FORBIDDEN = ("kfp", "pipeline", "components")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name (a package by its ``__init__``)."""
    return {_module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))
            if "__pycache__" not in path.parts}


def _imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``source`` imports, anywhere in it: ``from a import b`` names ``a.b`` (a
    module, or a name in ``a``), relative imports resolved against ``module``."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module that importing ``name`` runs last: the longest prefix of it that is one of ``modules``."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (function-level imports included)."""
    modules = _modules(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _, imported in _imported_names(path.read_text(), name, path.name == "__init__.py"):
            target = _resolve(imported, modules)
            if target and target != name:
                graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graphs here are a few dozen modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, set(group)) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def library_imports_of_the_orchestration_side(root: Path = ROOT) -> list[str]:
    """``path:line imports name`` for every import in ``videogen/`` of kfp, ``pipeline`` or ``components``."""
    found = []
    for name, path in _modules(root, ("videogen",)).items():
        for line, imported in _imported_names(path.read_text(), name, path.name == "__init__.py"):
            if imported.split(".")[0] in LIBRARY_FORBIDDEN:
                found.append(f"{path.relative_to(root).as_posix()}:{line} imports {imported}")
    return found


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_graph_sees_the_three_packages_and_their_function_level_imports():
    graph = import_graph()
    assert {"videogen.cli", "videogen.storage", "components.train", "pipeline.cli", "pipeline.pipeline"} <= set(graph)
    assert "pipeline.pipeline" in graph["pipeline.cli"]  # imported inside a function (kfp only when needed)
    assert "components._base" in graph["pipeline.config"]
    assert "videogen.cli" in graph["pipeline.cli"]


def test_no_library_module_imports_kfp_pipeline_or_components_even_inside_a_function():
    """Every module under videogen/ (``__main__`` included), every function body included."""
    assert library_imports_of_the_orchestration_side() == []


def test_the_library_check_catches_an_import_inside_a_function(tmp_path):
    root = _write(tmp_path, {"videogen/__init__.py": "", "videogen/cli.py": (
        "def run():\n    from pipeline.local_runner import run_local\n    import kfp.dsl\n")})
    assert library_imports_of_the_orchestration_side(root) == [
        "videogen/cli.py:2 imports pipeline.local_runner.run_local", "videogen/cli.py:3 imports kfp.dsl"]


def test_no_modules_of_videogen_components_and_pipeline_import_each_other_in_a_circle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph drawn between the top-level packages: which package imports which."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    return packages


def test_the_packages_import_one_way_pipeline_then_components_then_videogen():
    packages = package_graph(import_graph())
    assert not find_cycles(packages), f"packages import each other: {packages}"
    assert packages == {"pipeline": {"components", "videogen"}, "components": {"videogen"}, "videogen": set()}


@pytest.mark.parametrize("files, cycle", [
    ({"components/_base.py": "def image():\n    from pipeline.config import ClusterConfig\n",
      "pipeline/config.py": "from components._base import DEFAULT_IMAGE\n"},
     ["components._base", "pipeline.config", "components._base"]),
    ({"videogen/a.py": "from videogen import b\n", "videogen/b.py": "import videogen.c\n",
      "videogen/c.py": "from . import a\n"},
     ["videogen.a", "videogen.b", "videogen.c", "videogen.a"]),
], ids=["two packages, one import inside a function", "three modules, one relative import"])
def test_the_cycle_check_names_a_circle_of_imports(tmp_path, files, cycle):
    root = _write(tmp_path, {"videogen/__init__.py": "", "components/__init__.py": "", "pipeline/__init__.py": "",
                             **files})
    assert find_cycles(import_graph(root)) == [cycle]


def test_the_package_check_sees_two_packages_that_import_each_other_without_a_module_cycle(tmp_path):
    """components/_base.py importing pipeline.config while pipeline/pipeline.py imports the components: no module
    imports itself back, but the packages do."""
    root = _write(tmp_path, {"videogen/__init__.py": "", "components/__init__.py": "", "pipeline/__init__.py": "",
                             "components/_base.py": "from pipeline.config import ClusterConfig\n",
                             "pipeline/config.py": "", "pipeline/pipeline.py": "import components\n"})
    graph = import_graph(root)
    assert find_cycles(graph) == []
    assert find_cycles(package_graph(graph)) == [["components", "pipeline", "components"]]
