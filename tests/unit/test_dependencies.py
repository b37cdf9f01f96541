"""Dependency hygiene: every import of videogen/, components/ and pipeline/ comes from a distribution that
pyproject.toml declares, and pyproject.toml, requirements*.txt and the hash locks (scripts/lock.sh) agree.

- Imports: each .py file is parsed with ``ast``; every absolute import (also the lazy ones inside functions) is
  mapped to its distribution with ``importlib.metadata.packages_distributions()``. The stdlib and the project's own
  packages are skipped. Where several distributions share a top-level package (``kfp`` from kfp, kfp-kubernetes and
  kfp-pipeline-spec), the one whose files hold the imported submodule counts (``from kfp import kubernetes`` needs
  kfp-kubernetes).
- Locks: every entry is pinned with ``==`` and carries hashes; each lock pins every declared dependency inside its
  pyproject.toml range; requirements*.txt pins equal the lock versions; the dev and GPU locks agree with the
  runtime lock on every package they share; the installed versions of the declared dependencies are the locked ones.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("videogen", "components", "pipeline")
OWN_PACKAGES = {"videogen", "components", "pipeline"}
# Lock -> (pyproject extra it installs, its pinned input file or None).
LOCKS = {
    "requirements.lock": ("cpu", "requirements.txt"),
    "requirements-dev.lock": ("cpu", "requirements-dev.txt"),
    "requirements-gpu.lock": ("gpu", None),
}
K80_LOCK, K80_PINS = "docker/requirements-k80.lock", "docker/requirements-k80.txt"
# The platform every lock is compiled for (scripts/lock.sh: CPython 3.11, x86_64 manylinux).
LOCK_ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def norm(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared(extras: tuple[str, ...] = ("cpu", "gpu")) -> list[Requirement]:
    """pyproject.toml's dependencies plus those of the given extras."""
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


# --- imports ----------------------------------------------------------------------------------------------------

def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(dotted module, line) of every absolute import in ``path``, including imports inside functions. For
    ``from a.b import c`` both ``a.b`` and ``a.b.c`` are listed (c may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return found


@cache
def _module_prefixes(dist: str) -> frozenset[tuple[str, ...]]:
    """Every dotted-module prefix (as a tuple) that the files of installed distribution ``dist`` provide."""
    prefixes = set()
    for file in md.distribution(dist).files or []:
        parts = list(file.parts)
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
            continue
        parts[-1] = parts[-1].split(".")[0]  # module.py, module.cpython-311-x86_64-linux-gnu.so -> module
        for i in range(1, len(parts) + 1):
            prefixes.add(tuple(parts[:i]))
    return frozenset(prefixes)


def distributions_of(module: str, top_level: dict[str, list[str]]) -> set[str]:
    """The distributions that provide ``module``: by its top-level name, narrowed to those holding the longest part
    of its dotted path when several share the top-level package."""
    candidates = top_level.get(module.split(".")[0], [])
    if len(candidates) <= 1:
        return {norm(d) for d in candidates}
    parts = tuple(module.split("."))

    def depth(dist: str) -> int:
        prefixes = _module_prefixes(dist)
        return max((i for i in range(1, len(parts) + 1) if parts[:i] in prefixes), default=0)

    best = max(depth(d) for d in candidates)
    return {norm(d) for d in candidates if depth(d) == best}


def undeclared_imports(files: list[Path], declared_names: set[str]) -> list[str]:
    """One message per import whose distribution is not in ``declared_names`` (normalized), or that no installed
    distribution provides."""
    top_level = md.packages_distributions()
    problems = []
    for path in files:
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        modules = imported_modules(path)
        # `from a import b`: a.b narrows a's distribution only where b is a submodule; otherwise a stands alone.
        by_line: dict[int, list[str]] = {}
        for module, line in modules:
            by_line.setdefault(line, []).append(module)
        for module, line in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in OWN_PACKAGES:
                continue
            dists = distributions_of(module, top_level)
            if not dists:
                if any(other != module and module.startswith(other + ".") for other in by_line[line]):
                    continue  # `from a import name`: a is checked on its own
                problems.append(f"{where}:{line}: imports {module}, which no installed distribution provides "
                                f"(install it, and declare it in pyproject.toml)")
                continue
            if not dists & declared_names:
                problems.append(f"{where}:{line}: imports {module} from {' or '.join(sorted(dists))}, which "
                                f"pyproject.toml does not declare: add it to [project] dependencies (with a range), "
                                f"pin it in requirements.txt and run scripts/lock.sh")
    return sorted(set(problems))


def source_files() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_import_comes_from_a_declared_distribution():
    files = source_files()
    assert len(files) > 10, files
    names = {norm(r.name) for r in declared()}
    problems = undeclared_imports(files, names)
    assert not problems, "\n".join(problems)


def test_the_import_check_catches_an_undeclared_import(tmp_path):
    """The checker itself: a lazy `import yaml`, a top-level numpy import and `from kfp import kubernetes` with only
    numpy and kfp declared: yaml and kfp-kubernetes are named, numpy, kfp and the stdlib are not."""
    module = tmp_path / "stray.py"
    module.write_text("import os\nimport numpy as np\nfrom kfp import dsl, kubernetes\n\n"
                      "def load(text):\n    import yaml\n    return yaml.safe_load(text)\n")
    problems = undeclared_imports([module], {"numpy", "kfp"})
    assert len(problems) == 2, problems
    assert "stray.py:6: imports yaml from pyyaml" in problems[1]
    assert "imports kfp.kubernetes from kfp-kubernetes" in problems[0]
    assert not undeclared_imports([module], {"numpy", "kfp", "kfp-kubernetes", "pyyaml"})


def test_tensorflow_comes_from_exactly_one_extra():
    """Base dependencies name no TensorFlow build; `cpu` is tensorflow-cpu, `gpu` tensorflow[and-cuda], same version."""
    project = pyproject()["project"]
    assert not [r for r in declared(()) if norm(r.name).startswith("tensorflow")], project["dependencies"]
    extras = project["optional-dependencies"]
    (cpu,), (gpu,) = [Requirement(r) for r in extras["cpu"]], [Requirement(r) for r in extras["gpu"]]
    assert norm(cpu.name) == "tensorflow-cpu" and norm(gpu.name) == "tensorflow" and gpu.extras == {"and-cuda"}
    assert str(cpu.specifier) == str(gpu.specifier) and str(cpu.specifier).startswith("==")


def test_build_backend_supports_the_pep_639_license_string():
    build = pyproject()["build-system"]["requires"]
    (setuptools,) = [Requirement(r) for r in build if Requirement(r).name == "setuptools"]
    assert isinstance(pyproject()["project"]["license"], str)
    assert not setuptools.specifier.contains("77.0.2") and setuptools.specifier.contains("77.0.3"), setuptools


# --- locks ------------------------------------------------------------------------------------------------------

def parse_lock(rel: str) -> dict[str, Version]:
    """name -> version of a hash lock; asserts that every entry is an exact pin with at least one sha256 hash."""
    pins, entry, problems = {}, None, []
    for number, line in enumerate((ROOT / rel).read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            if entry is None:
                problems.append(f"{rel}:{number}: hash outside an entry")
            else:
                pins[entry][1].append(stripped)
            continue
        match = PIN.match(stripped)
        if not match or line[0].isspace():
            problems.append(f"{rel}:{number}: not an exact `name==version` pin: {stripped}")
            entry = None
            continue
        entry = norm(match[1])
        pins[entry] = (Version(match[2]), [])
    problems += [f"{rel}: {name}=={v} has no hash" for name, (v, hashes) in pins.items() if not hashes]
    assert not problems, "\n".join(problems)
    assert pins, f"{rel} is empty"
    return {name: version for name, (version, _) in pins.items()}


def parse_pins(rel: str) -> dict[str, Version]:
    """name -> version of the `name==version` lines of a requirements file, following `-r` includes."""
    pins = {}
    for line in (ROOT / rel).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins.update(parse_pins(str(Path(rel).parent / line[3:].strip())))
        elif line:
            match = PIN.match(line)
            assert match, f"{rel}: not an exact pin: {line}"
            pins[norm(match[1])] = Version(match[2])
    return pins


@pytest.mark.parametrize("lock", [*LOCKS, K80_LOCK])
def test_lock_entries_are_pinned_with_hashes_by_scripts_lock_sh(lock):
    parse_lock(lock)
    header = (ROOT / lock).read_text().splitlines()[:2]
    assert header[1].strip("# ") == "scripts/lock.sh", f"{lock} was not written by scripts/lock.sh: {header}"


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_pins_every_declared_dependency_inside_its_range(lock):
    extra, _ = LOCKS[lock]
    pins = parse_lock(lock)
    problems = []
    for req in declared((extra,)):
        if req.marker and not req.marker.evaluate({**LOCK_ENV, "extra": extra}):
            continue
        version = pins.get(norm(req.name))
        if version is None:
            problems.append(f"{lock} does not pin {req.name}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{lock} pins {req.name}=={version}, outside pyproject.toml's {req}")
    other = "tensorflow" if extra == "cpu" else "tensorflow-cpu"
    if other in pins:
        problems.append(f"{lock} ({extra}) also pins {other}: the two TensorFlow builds must not be installed together")
    assert not problems, "\n".join(problems) + "\n(edit requirements.txt / pyproject.toml, then run scripts/lock.sh)"
    if extra == "gpu":
        assert any(name.startswith("nvidia-cudnn") for name in pins), f"{lock} lacks tensorflow[and-cuda]'s CUDA wheels"


@pytest.mark.parametrize("lock", [lock for lock, (_, pins) in LOCKS.items() if pins] + [K80_LOCK])
def test_requirements_pins_equal_the_lock(lock):
    source = K80_PINS if lock == K80_LOCK else LOCKS[lock][1]
    pins, locked = parse_pins(source), parse_lock(lock)
    wrong = {name: (str(v), str(locked.get(name))) for name, v in pins.items() if locked.get(name) != v}
    assert not wrong, f"{source} pin -> {lock} version: {wrong}; run scripts/lock.sh"


def test_requirements_txt_pins_exactly_what_pyproject_declares():
    """requirements.txt pins every dependency of pyproject.toml (with the cpu extra) inside its range, and nothing
    else."""
    pins = parse_pins("requirements.txt")
    reqs = {norm(r.name): r for r in declared(("cpu",))}
    assert set(pins) == set(reqs), (f"only in requirements.txt: {sorted(set(pins) - set(reqs))}; "
                                    f"only in pyproject.toml: {sorted(set(reqs) - set(pins))}")
    outside = [f"{name}=={v} (pyproject.toml: {reqs[name]})" for name, v in pins.items()
               if not reqs[name].specifier.contains(v, prereleases=True)]
    assert not outside, outside


@pytest.mark.parametrize("lock", ["requirements-dev.lock", "requirements-gpu.lock"])
def test_locks_agree_with_the_runtime_lock_on_shared_packages(lock):
    runtime, other = parse_lock("requirements.lock"), parse_lock(lock)
    differ = {name: (str(runtime[name]), str(v)) for name, v in other.items() if name in runtime and runtime[name] != v}
    assert not differ, f"requirements.lock vs {lock}: {differ}"
    if lock == "requirements-dev.lock":
        assert not set(runtime) - set(other), f"{lock} lacks {sorted(set(runtime) - set(other))}"
    assert parse_lock(lock).get("tensorflow", runtime["tensorflow-cpu"]) == runtime["tensorflow-cpu"]


def test_k80_lock_keeps_the_keras_2_line():
    locked = parse_lock(K80_LOCK)
    assert locked["keras"] < Version("3") and locked["numpy"] < Version("2") and locked["protobuf"] < Version("5")


def test_installed_dependencies_are_the_locked_versions():
    """The venv running the tests was set up from requirements-dev.lock (scripts/setup.sh): each declared runtime
    dependency and each dev tool pin is installed at the locked version."""
    locked = parse_lock("requirements-dev.lock")
    wanted = {norm(r.name) for r in declared(("cpu",))} | set(parse_pins("requirements-dev.txt"))
    wrong = {}
    for name in sorted(wanted):
        try:
            installed = Version(md.version(name))
        except md.PackageNotFoundError:
            installed = None
        if installed != locked[name]:
            wrong[name] = (str(installed), str(locked[name]))
    assert not wrong, f"installed -> locked: {wrong}; run `make setup` (scripts/setup.sh installs the lock)"


# --- installers -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dockerfile", "lock", "extra"), [
    ("Dockerfile", "requirements.lock", "cpu"),
    ("Dockerfile.gpu", "requirements-gpu.lock", "gpu"),
    ("Dockerfile.gpu-k80", "requirements-k80.lock", None),
])
def test_images_install_from_a_lock_with_hashes(dockerfile, lock, extra):
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (ROOT / "docker" / dockerfile).read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    assert re.search(rf"pip install [^&]*--require-hashes -r \S*/{re.escape(lock)}\b", text), text
    assert "requirements.txt" not in text
    if extra:  # the package with its extra, no --no-deps, and nothing downloaded past the lock
        assert re.search(rf'pip install [^&]*--no-index [^&]*"videogen\[{extra}\]"', text), text
        assert not re.search(r"pip install [^&]*--no-deps", text), "the package installs with its dependencies"
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert any(line.startswith("!") and line.endswith(lock) for line in dockerignore), f".dockerignore hides {lock}"


def test_setup_installs_the_dev_lock_and_reinstalls_when_it_changes():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in text
    stamp_list = re.search(r"^reqs=\((.*)\)$", text, re.MULTILINE)
    assert stamp_list, "scripts/setup.sh: no reqs=(...) list for the install stamp"
    assert {"requirements.lock", "requirements-dev.lock", "pyproject.toml",
            "requirements.txt", "requirements-dev.txt"} <= set(stamp_list.group(1).split())

