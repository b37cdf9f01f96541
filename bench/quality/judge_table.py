"""The judge's table: the steered model, the model alone and both null controls on every measure, per clip and seed.

For each development clip: prepare at 64 px, train at the demo budget (1200 steps, batch 8, ngf/ndf 32, two context
frames; ``--train-seeds``), generate ``--frames`` frames with the default generation (steering on; ``--gen-seeds``)
and run the evaluate stage with its null controls (``--control-frames`` each: last frame + noise, the untrained
generator, the model alone). Every figure is the evaluate stage's (metrics.json). Rows go to ``--results`` (JSON
lines); ``--table`` prints the markdown table and the spread between seeds of a results file.

    .venv/bin/python bench/quality/judge_table.py --work /tmp/judge
    .venv/bin/python bench/quality/judge_table.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.quality.clips import CLIPS, MEASURES, prepared  # noqa: E402

DEMO = dict(max_steps=1200, batch_size=8, ngf=32, ndf=32, context_frames=2, log_every=300, checkpoint_every=100000)
RESULTS = REPO / "bench" / "quality" / "judge_table.jsonl"
GENERATORS = ("model", "model_alone", "noise", "untrained")


def run_one(clip: str, train_seed: int, gen_seed: int, args, work: Path) -> dict:
    from videogen.evaluate import EvaluateSettings, evaluate
    from videogen.generate import GenerateSettings, generate
    from videogen.train import TrainSettings, train

    data = prepared(clip, work)
    model = work / f"model_{clip}_s{train_seed}"
    if not (model / "model.json").exists():
        train(data, model, TrainSettings(**DEMO, seed=train_seed))
    gen = work / f"gen_{clip}_s{train_seed}_g{gen_seed}_{args.frames}"
    if not (gen / "generation.json").exists():
        generate(model, gen, GenerateSettings(frames=args.frames, seed=gen_seed), dataset_dir=data)
    out = gen.with_name(gen.name + "_eval")
    started = time.perf_counter()
    evaluate(data, model, out, EvaluateSettings(control_frames=args.control_frames), generated_dir=gen)
    metrics = json.loads((out / "metrics.json").read_text())
    return row(clip, train_seed, gen_seed, metrics, time.perf_counter() - started)


def _mean(values: list) -> float | None:
    valid = [v for v in values if v is not None]
    return round(sum(valid) / len(valid), 4) if valid else None


def row(clip: str, train_seed: int, gen_seed: int, metrics: dict, seconds: float) -> dict:
    """Each generator's window means (over the controls' frames) of every measure, its worst failures, its rollout
    PSNR through the generation path, and the verdict."""
    quality = metrics["video_quality"]
    controls = quality["controls"]
    frames = controls["frames"]
    scores = {"model": quality["videos"][0], **controls["scores"]}
    out = {"clip": clip, "train_seed": train_seed, "gen_seed": gen_seed, "frames": quality["frames"],
           "control_frames": frames, "sigma": controls["sigma"], "evaluate_s": round(seconds, 1),
           "one_step_gain_db": metrics["one_step"]["psnr_gain"], "adds": controls["comparison"]["adds"],
           "video_ok": metrics["assessment"]["video_ok"], "verdict": controls["comparison"]["text"]}
    for name in GENERATORS:
        s = scores[name]
        out[name] = {m: _mean([v for a, v in zip(s["window_starts"], s[m]) if a < frames]) for m in MEASURES}
        out[name]["failed"] = s["verdict"]["failed"]
        out[name].update({f"psnr_{r['k']}": r["psnr"] for r in controls["rollout"][name]})
    return out


def table(rows: list[dict]) -> str:
    cols = [*MEASURES, "psnr_1", "psnr_5", "psnr_10", "psnr_20"]
    lines = ["| clip | seeds (train, gen) | generator | " + " | ".join(cols) + " | failed |",
             "|" + " --- |" * (len(cols) + 4)]
    for r in rows:
        for name in GENERATORS:
            g = r[name]
            cells = [f"{g[c]:.2f}" if isinstance(g.get(c), (int, float)) else "-" for c in cols]
            lines.append(f"| {r['clip']} | {r['train_seed']}, {r['gen_seed']} | {name} | " + " | ".join(cells)
                         + f" | {', '.join(g['failed'])} |")
    return "\n".join(lines)


def spread(rows: list[dict]) -> dict[str, float]:
    """The largest difference of the model's figures between two runs of one clip (other training or generation
    seed): the spread between seeds the verdict's margins must exceed."""
    out: dict[str, float] = {}
    for clip in {r["clip"] for r in rows}:
        runs = [r["model"] for r in rows if r["clip"] == clip]
        for figure in ("spacetime", "coarse", "psnr_1", "psnr_5", "psnr_10", "psnr_20"):
            values = [g[figure] for g in runs if g.get(figure) is not None]
            if len(values) > 1:
                out[figure] = round(max(out.get(figure, 0.0), max(values) - min(values)), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--gen-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--control-frames", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("work/judge"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the table of --results and stop")
    args = parser.parse_args(argv)
    if not args.table:
        args.work.mkdir(parents=True, exist_ok=True)
        for clip in args.clips:
            for train_seed in args.train_seeds:
                for gen_seed in args.gen_seeds:
                    result = run_one(clip, train_seed, gen_seed, args, args.work)
                    with args.results.open("a") as f:
                        f.write(json.dumps(result) + "\n")
                    print(json.dumps({k: result[k] for k in ("clip", "train_seed", "gen_seed", "adds", "video_ok")}),
                          flush=True)
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    print(table(rows))
    print("\nseed-to-seed spread of the model's figures:", json.dumps(spread(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
