"""The library never imports the orchestration side: no module of `videogen` pulls in kfp, `pipeline` or
`components`, and `videogen prepare -h` (which builds the whole command line) does not either."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import videogen

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("kfp", "pipeline", "components")

# Run in a fresh interpreter: this test process has kfp loaded already.
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})))
"""


def _library_modules():
    """Every module of the package but ``__main__``, which runs the command line (test_prepare_help_... covers it)."""
    return sorted(info.name for info in pkgutil.walk_packages(videogen.__path__, "videogen.")
                  if info.name != "videogen.__main__")


def _loaded_forbidden(module: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(forbidden=set(FORBIDDEN)), module],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_walk_finds_the_library_modules():
    modules = _library_modules()
    assert {"videogen.cli", "videogen.runs", "videogen.train", "videogen.storage"} <= set(modules)
    assert not any(m.startswith(("videogen.local", "videogen.submit", "videogen.config")) for m in modules)


@pytest.mark.parametrize("module", ["videogen"] + _library_modules())
def test_importing_a_library_module_loads_no_orchestration_code(module):
    assert _loaded_forbidden(module) == [], f"{module} imports the orchestration side"


@pytest.mark.parametrize("module, allowed", [("videogen", set()), ("pipeline.cli", {"pipeline", "pipeline.cli"})],
                         ids=["python -m videogen", "the videogen console script"])
def test_prepare_help_imports_no_kfp(module, allowed):
    """`videogen prepare -h` builds every command's parser; kfp (and `components`, and of `pipeline` all but the
    console script's own module) stay unloaded. Checked with `-X importtime`, which lists every module the process
    imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "prepare", "-h"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "--image-size" in proc.stdout, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "videogen.cli" in imported and "videogen.dataset" in imported  # the probe sees the library's imports
    leaked = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN and m not in allowed)
    assert leaked == [], f"`python -m {module} prepare -h` imported {leaked}"
