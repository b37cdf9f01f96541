"""Where `videogen train`'s step spends its time on this CPU, next to the tutorial-style reference step.

In one process, one step of each in turn (so each sees the same machine load), several rounds:

- ``step alone``: videogen's compiled train step (the one ``videogen.train.train()`` builds) on one constant batch;
- ``step + pipeline``: the same step fed by ``next()`` on videogen's input pipeline, as the training loop does;
- ``reference``: the tutorial-style step of bench/run.py (float32, two tapes, Keras Adam, constant float32 batch);

then the input pipeline alone (batches drawn with no step running), and, in a child process with
``ONEDNN_VERBOSE=profile_exec``, oneDNN's own time per primitive kind (convolution passes, reorders) and the reorders
by weight shape: the reordering of each convolution's weights into oneDNN's blocked layout (forward, backward-data)
and of the weight gradient back (backward-weights), three per convolution and step. oneDNN's times add up to more
than the step's wall time where two ops run at once (TensorFlow's inter-op threads), so read them as shares.

Usage: ``python -m bench.train_breakdown [--size 128] [--batch 8] [--ngf 64] [--precision auto] [--rounds 8]``
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_MARK = "=== onednn profile from here"


def videogen_step(dataset_dir: Path, size: int, ngf: int, batch: int, precision: str):
    """``(step on a constant batch, step fed by the pipeline, next batch, precision)``: the models, step and input
    pipeline that ``videogen.train.train()`` builds for these settings (its main phase)."""
    from videogen import artifacts
    from videogen.train import data, fit
    from videogen.train.settings import TrainSettings

    settings = TrainSettings(max_steps=1000, batch_size=batch, ngf=ngf, ndf=ngf, precision=precision)
    plan = fit._plan(settings, artifacts.open_dataset(dataset_dir))
    devices = fit._choose_devices(settings, plan.batch)
    models = fit._build_models(settings, size, devices)
    step = fit._make_step(models, plan, devices)
    examples, _ = fit._phase_examples(plan, 0, plan.phases[0], settings.seed, models["generator"], devices)
    batches = iter(data.batches(examples, size, plan.batch, seed=settings.seed + 1))
    constant = next(batches)

    def alone():
        return [float(v) for v in step(*constant)]

    def fed():
        return [float(v) for v in step(*next(batches))]

    return alone, fed, lambda: next(batches), devices.precision


def interleaved(variants: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, one call of each in turn per round (after two warm-up calls each)."""
    for fn in variants.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def pipeline_rate(next_batch, batch: int, count: int) -> float:
    """Images per second the input pipeline delivers with no step running."""
    started = time.perf_counter()
    for _ in range(count):
        next_batch()
    return count * batch / (time.perf_counter() - started)


def onednn_child(size: int, ngf: int, batch: int, precision: str, steps: int) -> None:
    """Run the step alone ``steps`` times after a warm-up, printing a mark before (oneDNN logs to stdout)."""
    with tempfile.TemporaryDirectory(prefix="videogen-breakdown-") as tmp:
        from bench.run import make_dataset_dir

        alone, _, _, _ = videogen_step(make_dataset_dir(Path(tmp) / "data", size), size, ngf, batch, precision)
        for _ in range(3):
            alone()
        print(_MARK, flush=True)
        for _ in range(steps):
            alone()
        sys.stdout.flush()


def onednn_profile(size: int, ngf: int, batch: int, precision: str, steps: int) -> dict:
    """oneDNN's milliseconds per step by (primitive kind, propagation) and of the reorders by tensor shape."""
    env = dict(os.environ, ONEDNN_VERBOSE="profile_exec", TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.run([sys.executable, "-m", "bench.train_breakdown", "--onednn-child",
                            f"{size},{ngf},{batch},{precision},{steps}"], env=env, cwd=ROOT, capture_output=True,
                           text=True, check=True)
    kinds: collections.Counter = collections.Counter()
    reorders: collections.Counter = collections.Counter()
    for line in child.stdout.split(_MARK, 1)[-1].splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        try:
            ms = float(fields[-1]) / steps
        except ValueError:
            continue
        kind, prop = fields[at + 2], fields[at + 4]
        kinds[kind if kind == "reorder" else f"{kind} {prop}"] += ms
        if kind == "reorder" and re.fullmatch(r"\d+x\d+x\d+x\d+", fields[-2]):
            reorders[fields[-2]] += ms
    return {"kinds": dict(kinds), "reorders": dict(reorders)}


def measure(size: int, ngf: int, batch: int, precision: str, rounds: int) -> dict:
    from bench.run import make_dataset_dir, reference_train_step

    with tempfile.TemporaryDirectory(prefix="videogen-breakdown-") as tmp:
        alone, fed, next_batch, resolved = videogen_step(make_dataset_dir(Path(tmp) / "data", size), size, ngf,
                                                         batch, precision)
        reference, _, _ = reference_train_step(size, ngf, batch)
        times = interleaved({"step alone": alone, "step + pipeline": fed, "reference": reference}, rounds)
        rate = pipeline_rate(next_batch, batch, 4 * rounds)
    return {"precision": resolved, "times": times, "pipeline_images_per_s": rate}


def report(result: dict, profile: dict | None, batch: int) -> str:
    times = result["times"]
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [f"precision: {result['precision']}; median of {len(times['reference'])} interleaved steps", "",
             "| what | ms/step | img/s | vs reference |", "| --- | --- | --- | --- |"]
    for name, seconds in median.items():
        lines.append(f"| {name} | {1000 * seconds:.0f} | {batch / seconds:.2f} | "
                     f"{median['reference'] / seconds:.2f}x |")
    rate = result["pipeline_images_per_s"]
    lines.append(f"| input pipeline alone | {1000 * batch / rate:.1f} | {rate:.0f} | |")
    if profile:
        total = sum(profile["kinds"].values())
        lines += ["", f"oneDNN time per step: {total:.0f} ms (ONEDNN_VERBOSE=profile_exec, step alone)", "",
                  "| oneDNN primitive | ms/step | share |", "| --- | --- | --- |"]
        lines += [f"| {kind} | {ms:.0f} | {100 * ms / total:.0f}% |"
                  for kind, ms in sorted(profile["kinds"].items(), key=lambda item: -item[1])]
        lines += ["", "| reorders by tensor shape (weights: out x in x h x w) | ms/step |", "| --- | --- |"]
        lines += [f"| {shape} | {ms:.1f} |" for shape, ms in sorted(profile["reorders"].items(),
                                                                    key=lambda item: -item[1])[:8]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ngf", type=int, default=64, help="ngf and ndf")
    parser.add_argument("--precision", default="auto", help="auto (what `videogen train` picks here), float32, bfloat16")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved steps of each kind")
    parser.add_argument("--profile-steps", type=int, default=2, help="steps under oneDNN's profiler (0: skip it)")
    parser.add_argument("--onednn-child", help=argparse.SUPPRESS)  # SIZE,NGF,BATCH,PRECISION,STEPS
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.onednn_child:
        size, ngf, batch, precision, steps = args.onednn_child.split(",")
        onednn_child(int(size), int(ngf), int(batch), precision, int(steps))
        return 0
    result = measure(args.size, args.ngf, args.batch, args.precision, args.rounds)
    profile = (onednn_profile(args.size, args.ngf, args.batch, args.precision, args.profile_steps)
               if args.profile_steps > 0 else None)
    print(f"{args.size} px, batch {args.batch}, ngf/ndf {args.ngf}")
    print(report(result, profile, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
