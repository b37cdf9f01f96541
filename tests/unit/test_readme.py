"""The README stays true: its literal commands parse, and every `make` target it names exists."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from videogen.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _code_lines():
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line:
                yield line


@pytest.mark.parametrize("line", [ln for ln in _code_lines() if ln.startswith(".venv/bin/videogen ")])
def test_literal_videogen_commands_in_the_readme_parse(line):
    """Each `.venv/bin/videogen ...` example is a valid command line (flags exist, values have the right type)."""
    build_parser().parse_args(shlex.split(line)[1:])


def test_every_make_target_in_the_readme_exists():
    """`make demo`, `make test`, `make deploy ...` and the rest are real targets (checked with `make -n`)."""
    targets = set()
    for line in _code_lines():
        match = re.match(r"make ([a-z-]+)", line)
        if match:
            targets.add(match.group(1))
    assert {"demo", "test", "images", "deploy", "run", "fetch", "compile", "lint", "bench"} <= targets
    makefile_targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    assert targets <= makefile_targets, targets - makefile_targets
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "fetch", "RUN_ID=abc"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--run-id abc" in proc.stdout


def test_the_first_screen_has_the_two_setup_commands():
    """The README's first screen shows `make demo` and `make test`, and CI runs that same test command."""
    first_screen = "\n".join(README.splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "make test" in (ROOT / ".ci" / "run").read_text()
