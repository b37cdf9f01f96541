"""Run the fuzz harnesses one after another (``make fuzz``) and print what each did.

    python -m fuzz.run [--seconds N | --runs N] [--timeout S] [--out DIR] [HARNESS ...]

Each harness runs in its own process (atheris over libFuzzer) on its starting corpus (``fuzz/corpus/<harness>``,
read only), the inputs that once broke a reader (``fuzz/regressions/<harness>``) and a working corpus that grows
(``<out>/corpus/<harness>``). An input that breaks the contract (see :mod:`fuzz.driver`) or runs longer than
``--timeout`` seconds stops the harness and is saved under ``<out>/findings/<harness>/`` (``crash-...`` or
``timeout-...``; reproduce it with ``python -m fuzz.<harness> FILE``). The exit status is 1 when any harness found
something. libFuzzer's flags: https://llvm.org/docs/LibFuzzer.html#options
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESSES = ("ffprobe", "dataset_frames", "generated_frames", "dataset_json", "model_json", "generation_json",
             "steering_npz", "metrics_json", "sources")
CORPUS = ROOT / "fuzz" / "corpus"
REGRESSIONS = ROOT / "fuzz" / "regressions"
# libFuzzer's status lines: "#1234  DONE  cov: 321 ft: 654 corp: 12/3456b ..." (also INITED, NEW, REDUCE, pulse).
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")


def command(name: str, out: Path, seconds: float | None, runs: int | None, timeout_s: int) -> list[str]:
    """The atheris command line of one harness."""
    corpus, findings = out / "corpus" / name, out / "findings" / name
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    limit = [f"-max_total_time={int(seconds)}"] if seconds is not None else []
    limit += [f"-runs={runs}"] if runs is not None else []
    dirs = [d for d in (corpus, CORPUS / name, REGRESSIONS / name) if d.is_dir()]
    return [sys.executable, "-m", f"fuzz.{name}", *limit, f"-timeout={timeout_s}", "-rss_limit_mb=3072",
            "-print_final_stats=1", f"-artifact_prefix={findings}/", *map(str, dirs)]


def run_one(name: str, out: Path, seconds: float | None, runs: int | None, timeout_s: int) -> dict:
    """Run one harness; its figures (executions, cov, ft, corpus size, seconds) and whether it found something."""
    scratch = Path(tempfile.mkdtemp(prefix=f"videogen-fuzz-{name}-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "VIDEOGEN_FUZZ_SCRATCH": str(scratch)}
    started = time.monotonic()
    try:
        done = subprocess.run(command(name, out, seconds, runs, timeout_s), cwd=ROOT, env=env, capture_output=True,
                              text=True, errors="replace")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log = done.stdout + done.stderr
    (out / f"{name}.log").write_text(log)
    status = [m.groups() for m in map(_STATUS.match, log.splitlines()) if m]
    executed = _EXECUTED.search(log)
    last = status[-1] if status else ("0", "", "0", "0", "0")
    findings = sorted(p.name for p in (out / "findings" / name).iterdir())
    return {"harness": name, "seconds": round(time.monotonic() - started, 1),
            "executions": int(executed.group(1)) if executed else int(last[0]), "cov": int(last[2]),
            "ft": int(last[3]), "corpus": int(last[4]), "returncode": done.returncode, "findings": findings,
            "tail": "" if done.returncode == 0 else log[-3000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("harnesses", nargs="*", choices=[[], *HARNESSES], default=[], metavar="HARNESS",
                        help=f"which to run (default: all): {', '.join(HARNESSES)}")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per harness (default 60)")
    parser.add_argument("--runs", type=int, default=None, help="executions per harness instead of --seconds")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a finding")
    parser.add_argument("--out", type=Path, default=ROOT / "fuzz" / "out",
                        help="working corpora, findings and logs (default fuzz/out, git-ignored)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None or args.runs is not None else 60.0
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    print(f"{'harness':18} {'seconds':>8} {'executions':>11} {'cov':>6} {'ft':>7} {'corpus':>7}  findings", flush=True)
    for name in args.harnesses or HARNESSES:
        r = run_one(name, args.out, seconds, args.runs, args.timeout)
        results.append(r)
        print(f"{name:18} {r['seconds']:8.1f} {r['executions']:11d} {r['cov']:6d} {r['ft']:7d} {r['corpus']:7d}  "
              f"{', '.join(r['findings']) or '-'}", flush=True)
        if r["returncode"] != 0:
            print(r["tail"], file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["returncode"] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
