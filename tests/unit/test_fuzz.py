"""The fuzz harnesses (fuzz/, ``make fuzz``) in CI: each runs a short while over its starting corpus and the inputs that
once broke a reader, and finds nothing; each of those inputs, fed to its harness here, passes (the fix it needed is
in place: the same input failed before it)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz import run

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = sorted((h.name, f.name) for h in run.REGRESSIONS.iterdir() if h.is_dir() for f in h.iterdir())
# Executions per harness after its corpus: a few seconds each on 2 cores (the slowest, metrics_json, ~300/s).
CI_RUNS = 1000


@pytest.fixture()
def harness_scratch(tmp_path, monkeypatch):
    """Harness scratch directories under the test's tmp_path; a fresh one for every test."""
    monkeypatch.setenv("VIDEOGEN_FUZZ_SCRATCH", str(tmp_path))
    yield tmp_path


@pytest.mark.parametrize("harness,name", REGRESSIONS, ids=[f"{h}-{n}" for h, n in REGRESSIONS])
def test_an_input_that_once_broke_a_reader_now_keeps_the_contract(harness_scratch, monkeypatch, harness, name):
    """Every input in fuzz/regressions/<harness>/ made its reader raise something other than the one-line user error
    (or, the huge frame-rate exponent, run for hours); now it parses or is refused in one line, quickly."""
    module = importlib.import_module(f"fuzz.{harness}")
    for cached in ("_DIR", "_SANDBOX"):  # a fresh scratch directory under tmp_path
        if hasattr(module, cached):
            monkeypatch.setattr(module, cached, None)
    if harness == "sources":  # it works in its sandbox and stands in for http: both are undone after the test
        from videogen import storage

        monkeypatch.chdir(harness_scratch)
        monkeypatch.setattr(storage, "_http_identity", storage._http_identity)
    started = time.monotonic()
    module.test_one_input((run.REGRESSIONS / harness / name).read_bytes())
    assert time.monotonic() - started < 5


def test_every_harness_has_a_starting_corpus_and_a_module():
    assert sorted(run.HARNESSES) == sorted(p.name for p in run.CORPUS.iterdir() if p.is_dir())
    assert all((ROOT / "fuzz" / f"{name}.py").is_file() for name in run.HARNESSES)
    assert {h for h, _ in REGRESSIONS} <= set(run.HARNESSES)


@pytest.mark.parametrize("harness", run.HARNESSES)
def test_a_short_fuzz_run_finds_nothing(tmp_path, harness):
    """The harness runs its corpus, its regressions and CI_RUNS executions in all (atheris, its own process) and stops
    without a finding (an exception other than the user error, a message not naming the file, a leftover file, a
    hang past 10 s)."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "fuzz.run", "--runs", str(CI_RUNS), "--timeout", "10", "--out",
                           str(out), "--json", str(tmp_path / "r.json"), harness], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert not list((out / "findings" / harness).iterdir())
    assert f"\n{harness} " in done.stdout, done.stdout
