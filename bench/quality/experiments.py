"""Quality experiments for issue 5: which training settings make the next-frame model beat copying the last frame on
real footage, and keep long generated videos alive. Results are what docs/quality.md reports.

One run = prepare (cached) -> train -> score, all at 64 px on CPU:
- one-step PSNR/SSIM on the val pairs and k-step rollouts (k = 1, 5, 10, 20, dropout off), model vs copy, with the
  same functions and start frames as ``videogen evaluate`` (8 starts, seed 0);
- a 96-frame generated video through ``videogen.generate.generate`` with the default GenerateSettings (dropout ON,
  precision auto) and one with ``deterministic=True``, each checked with evaluate's health flags.

Usage (each run appends one JSON line to --results; run them one after another, they use all cores):
    .venv/bin/python bench/quality/experiments.py run --clip bikes --name gn_l1 --steps 600 \\
        --set norm=group gan_weight=0 refine_rounds=0
    .venv/bin/python bench/quality/experiments.py table --results work/quality/results.jsonl
``--set`` takes TrainSettings fields (batch 8, ngf/ndf 32, log_every 100 unless set); ``--bn-momentum`` overrides the
BatchNormalization momentum (Keras' 0.99) for that run only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CLIPS = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}
BASE = dict(batch_size=8, ngf=32, ndf=32, log_every=100, checkpoint_every=100000)


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def prepare_clip(clip: str, work: Path, image_size: int = 64) -> Path:
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, prepare

    out = work / "data" / f"{clip}_{image_size}"
    if not (out / "dataset.json").exists():
        prepare(real_clip(CLIPS[clip]), out, PrepareSettings(image_size=image_size))
    return out


def score(dataset_dir: Path, model_dir: Path, work: Path, frames: int = 96) -> dict:
    import keras
    import numpy as np

    from videogen import artifacts
    from videogen import evaluate as ev
    from videogen import generate as gen

    dataset = artifacts.open_dataset(dataset_dir)
    data = np.asarray(dataset.frames)
    model_info = json.loads((model_dir / "model.json").read_text())
    k = int(model_info["context_frames"])
    model = keras.models.load_model(model_dir / "generator.keras", compile=False)
    settings = ev.EvaluateSettings()
    val = dataset.block("val")
    pairs = np.arange(max(val[0], k - 1), val[1])
    one_step, _ = ev._one_step(model, data, pairs, k, settings.batch_size)
    rng = np.random.default_rng(settings.seed)
    starts = ev._choose_starts(pairs, len(data), max(settings.rollout_steps), settings.num_starts, rng)
    rollout, _ = ev._rollout_quality(model, data, starts, k, settings.rollout_steps, settings.batch_size)
    train_block = dataset.block("train")
    reference = ev.training_reference(data, train_block[0], train_block[1] + 1)
    health = {}
    for mode, deterministic in (("dropout_on", False), ("dropout_off", True)):
        out = work / f"gen_{mode}"
        shutil.rmtree(out, ignore_errors=True)
        gen.generate(model_dir, out, gen.GenerateSettings(frames=frames, deterministic=deterministic),
                     dataset_dir=dataset_dir)
        video = np.load(out / "frames.npy")
        flags = ev.long_rollout_health(video, reference)["flags"]
        stats = ev.frame_statistics(video[:, 0])
        health[mode] = {"flags": {n: f["frame"] for n, f in flags.items()},
                        "last_std": round(float(stats["std"][-1]), 2),
                        "mean_change_last10": round(float(np.mean(stats["change"][-10:])), 2),
                        "sat_last": round(float(stats["saturated"][-1]), 3)}
        shutil.rmtree(out, ignore_errors=True)
    return {"one_step": one_step, "rollout": rollout, "health": health,
            "train_change_median": round(float(reference["change_median"]), 2)}


def run(args) -> dict:
    import numpy as np  # noqa: F401

    from videogen import model as model_module
    from videogen.train import TrainSettings, train

    if args.bn_momentum is not None:
        model_module._BN_MOMENTUM = args.bn_momentum
    work = Path(args.work)
    dataset_dir = prepare_clip(args.clip, work)
    overrides = {key: _parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    settings = TrainSettings(**{**BASE, "max_steps": args.steps, **overrides})
    model_dir = work / "models" / f"{args.clip}_{args.name}"
    shutil.rmtree(model_dir, ignore_errors=True)
    t0 = time.perf_counter()
    info = train(dataset_dir, model_dir, settings)
    train_s = time.perf_counter() - t0
    result = {"name": args.name, "clip": args.clip, "date": time.strftime("%Y-%m-%d %H:%M"),
              "steps": args.steps, "overrides": overrides, "bn_momentum": args.bn_momentum,
              "settings": dataclasses.asdict(settings), "train_s": round(train_s, 1),
              "train_images_per_s": info.get("train_images_per_s"),
              **score(dataset_dir, model_dir, work / "tmp" / f"{args.clip}_{args.name}")}
    if not args.keep:
        shutil.rmtree(model_dir, ignore_errors=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(summary_line(result), flush=True)
    return result


def summary_line(r: dict) -> str:
    one = r["one_step"]
    rows = {row["k"]: row for row in r["rollout"]}

    def roll(k):
        row = rows.get(k)
        return f"k{k} {row['psnr_model']:.2f}/{row['psnr_copy']:.2f}" if row and row["psnr_model"] is not None else ""

    flags = {mode: ",".join(f"{n}@{v}" for n, v in h["flags"].items() if v is not None) or "ok"
             for mode, h in r["health"].items()}
    return (f"{r['clip']:8s} {r['name']:24s} 1-step {one['psnr_model']:.2f}/{one['psnr_copy']:.2f} "
            f"(ssim {one['ssim_model']:.3f}/{one['ssim_copy']:.3f}) {roll(5)} {roll(10)} {roll(20)} | "
            f"gen dropout-on {flags['dropout_on']} off {flags['dropout_off']} | train {r['train_s']}s")


def table(args) -> None:
    rows = [json.loads(line) for line in open(args.results) if line.strip()]
    print("| clip | run | steps | 1-step PSNR model / copy | SSIM model / copy | k=5 | k=10 | k=20 | "
          "generated 96 (dropout on) | (dropout off) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one = r["one_step"]
        by_k = {row["k"]: row for row in r["rollout"]}

        def cell(k, by_k=by_k):
            row = by_k.get(k)
            if not row or row["psnr_model"] is None:
                return "-"
            return f"{row['psnr_model']:.2f} / {row['psnr_copy']:.2f}"

        def health(mode, r=r):
            h = r["health"][mode]
            bad = [f"{n} @{v}" for n, v in h["flags"].items() if v is not None]
            return ", ".join(bad) if bad else f"alive (std {h['last_std']}, change {h['mean_change_last10']})"

        print(f"| {r['clip']} | {r['name']} | {r['steps']} | {one['psnr_model']:.2f} / {one['psnr_copy']:.2f} | "
              f"{one['ssim_model']:.3f} / {one['ssim_copy']:.3f} | {cell(5)} | {cell(10)} | {cell(20)} | "
              f"{health('dropout_on')} | {health('dropout_off')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--clip", choices=sorted(CLIPS), required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--set", nargs="*", default=[], help="TrainSettings overrides key=value")
    p.add_argument("--bn-momentum", type=float, default=None)
    p.add_argument("--work", default=str(REPO / "work" / "quality"))
    p.add_argument("--results", default=str(REPO / "work" / "quality" / "results.jsonl"))
    p.add_argument("--keep", action="store_true", help="keep the model dir")
    t = sub.add_parser("table")
    t.add_argument("--results", default=str(REPO / "work" / "quality" / "results.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.command == "run":
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        run(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
