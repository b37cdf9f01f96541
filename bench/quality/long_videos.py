"""Long-video table: train at the demo budget, generate 2000 frames, judge them with the evaluate stage.

For each clip and recipe: prepare (64 px), train (``videogen.train.train``: 1200 steps, batch 8, ngf/ndf 32), generate
``--frames`` frames x ``--videos`` videos from the dataset's start frames with steering on and off, and run the evaluate
stage (``videogen.evaluate.evaluate``) on each, so every figure is the production scorer's (metrics.json). Rows go to
``--results`` (JSON lines); ``--table`` prints the markdown table of a results file.

Recipes: ``default`` (TrainSettings defaults at the demo size), ``plain`` (the original workflow's pix2pix: plain
tanh output, BatchNorm, L1 weight 1, GAN weight 1, one context frame) and ``unroll4`` (defaults, the last half of the
steps trained through 4 fed-back steps: ``unroll_steps=4, unroll_fraction=0.5``).

    .venv/bin/python bench/quality/long_videos.py --clips bikes bunny carphone
    .venv/bin/python bench/quality/long_videos.py --table
    .venv/bin/python bench/quality/long_videos.py --figure docs/long_videos.png
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

CLIPS = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}
DEMO = dict(max_steps=1200, batch_size=8, ngf=32, ndf=32, log_every=300, checkpoint_every=100000)
RECIPES = {"default": {}, "plain": dict(residual=False, norm="batch", l1_weight=1.0, gan_weight=1.0, context_frames=1),
           "unroll4": dict(unroll_steps=4, unroll_fraction=0.5)}
RESULTS = REPO / "bench" / "quality" / "long_videos.jsonl"


def run_one(clip: str, recipe: str, args, work: Path) -> list[dict]:
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, prepare
    from videogen.evaluate import evaluate
    from videogen.generate import GenerateSettings, generate
    from videogen.train import TrainSettings, train

    data = work / f"data_{clip}"
    if not (data / "dataset.json").exists():
        prepare(real_clip(CLIPS[clip]), data, PrepareSettings(image_size=64))
    model = work / f"model_{clip}_{recipe}_s{args.seed}"
    if not (model / "model.json").exists():
        train(data, model, TrainSettings(**DEMO, **RECIPES[recipe], seed=args.seed))
    info = json.loads((model / "model.json").read_text())
    rows = []
    for steer in (True,) if args.steered_only else (True, False):
        gen = work / f"gen_{clip}_{recipe}_s{args.seed}_{'steer' if steer else 'plain'}"
        started = time.perf_counter()
        generate(model, gen, GenerateSettings(frames=args.frames, num_videos=args.videos, seed=args.seed, steer=steer),
                 dataset_dir=data)
        gen_s = time.perf_counter() - started
        metrics_dir = gen.with_name(gen.name + "_eval")
        evaluate(data, model, metrics_dir, generated_dir=gen)
        metrics = json.loads((metrics_dir / "metrics.json").read_text())
        rows.append(row(clip, recipe, steer, args, info, metrics, gen_s))
    return rows


def same_start(clip: str, recipe: str, args, work: Path) -> dict:
    """Two steered videos from ONE start frame (the dataset's start frame as a start image): do they differ?"""
    import numpy as np
    from PIL import Image

    from videogen.evaluate import evaluate
    from videogen.generate import GenerateSettings, generate

    data, model = work / f"data_{clip}", work / f"model_{clip}_{recipe}_s{args.seed}"
    info = json.loads((data / "dataset.json").read_text())
    start = work / f"start_{clip}.png"
    Image.fromarray(np.load(data / "frames.npy", mmap_mode="r")[info["start_frame"]]).save(start)
    gen = work / f"gen_{clip}_{recipe}_s{args.seed}_same"
    started = time.perf_counter()
    generate(model, gen, GenerateSettings(frames=args.frames, num_videos=args.videos, seed=args.seed), start_image=start)
    gen_s = time.perf_counter() - started
    evaluate(data, model, gen.with_name(gen.name + "_eval"), generated_dir=gen)
    metrics = json.loads((gen.with_name(gen.name + "_eval") / "metrics.json").read_text())
    result = row(clip, recipe, True, args, json.loads((model / "model.json").read_text()), metrics, gen_s)
    return {**result, "same_start": metrics["video_quality"]["diversity"]["same_start"]}


def row(clip: str, recipe: str, steer: bool, args, info: dict, metrics: dict, gen_s: float) -> dict:
    quality = metrics["video_quality"]
    videos = quality["videos"]

    def span(name):
        values = [v for s in videos for v in s[name] if v is not None]
        return [round(min(values), 3), round(max(values), 3)] if values else None

    from videogen import steering

    return {
        "clip": clip, "recipe": recipe, "steer": steer, "look": steering.DEFAULT_LOOK if steer else None,
        "seed": args.seed, "frames": args.frames,
        "videos": len(videos), "train_s": info.get("duration_s"), "train_img_s": info.get("train_images_per_s"),
        "generate_s": round(gen_s, 1),
        "one_step": {k: metrics["one_step"].get(k) for k in ("psnr_model", "psnr_copy")},
        "motion": span("motion"), "realism_last": [round(s["realism"][-1], 3) for s in videos],
        "sharpness": span("sharpness"),
        "drift": [round((s["drift"] or {}).get("realism") or 0, 3) for s in videos],
        "replay": [round(s["replay_share"], 3) for s in videos],
        "fails": sorted({f"{name} ({f['frame']})" for s in videos for name, f in s["verdict"]["failures"].items()}),
        "ok": quality["verdict"]["ok"], "diversity": (quality.get("diversity") or {}).get("diversity"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def steering_label(r: dict) -> str:
    """"off", "on" (the patch-projection look) or "on, frame look" (rows from before the patch look, which have no
    ``look``)."""
    if not r["steer"]:
        return "off"
    return "on" if r.get("look", "frame") == "patch" else "on, frame look"


def table(path: Path) -> str:
    lines = ["| clip | recipe | steering | motion (min-max) | realism last | sharpness | drift | replay | one-step "
             "model / copy (dB) | diversity | fails (from frame) |", "| --- " * 11 + "|"]
    for line in path.read_text().splitlines():
        r = json.loads(line)
        fmt = "-".join(f"{v:.2f}" for v in r["motion"] or [])
        lines.append(
            f"| {r['clip']} | {r['recipe']} | {steering_label(r)}{', one start' if r.get('same_start') else ''} | {fmt} | "
            f"{', '.join(f'{v:.2f}' for v in r['realism_last'])} | "
            f"{'-'.join(f'{v:.2f}' for v in r['sharpness'] or [])} | {', '.join(f'{v:.2f}' for v in r['drift'])} | "
            f"{', '.join(f'{v:.3f}' for v in r['replay'])} | {r['one_step']['psnr_model']:.2f} / "
            f"{r['one_step']['psnr_copy']:.2f} | {r['diversity'] if r['diversity'] is None else round(r['diversity'], 2)}"
            f" | {', '.join(r['fails']) or 'none (pass)'} |")
    return "\n".join(lines)


def figure(work: Path, out: Path, clips: list[str], frames=(1, 100, 500, 1000, 1500, 2000), recipe: str = "default",
           seed: int = 0, scale: int = 2) -> None:
    """A grid of generated frames (first video of each run): per clip, the steered and the unsteered run."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rows = [(clip, mode) for clip in clips for mode in ("steer", "plain")
            if (work / f"gen_{clip}_{recipe}_s{seed}_{mode}" / "frames.npy").exists()]
    side = 64 * scale
    left, top, gap = 150, 30, 2
    canvas = Image.new("RGB", (left + len(frames) * (side + gap), top + len(rows) * (side + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    big, small = ImageFont.load_default(size=20), ImageFont.load_default(size=15)
    for j, f in enumerate(frames):
        draw.text((left + j * (side + gap) + side // 2, top // 2), f"frame {f}", fill="black", font=small, anchor="mm")
    for i, (clip, mode) in enumerate(rows):
        video = np.load(work / f"gen_{clip}_{recipe}_s{seed}_{mode}" / "frames.npy", mmap_mode="r")
        y = top + i * (side + gap)
        draw.text((6, y + side // 2 - 14), clip, fill="black", font=big)
        draw.text((6, y + side // 2 + 12), "steered" if mode == "steer" else "not steered", fill="black", font=small)
        for j, f in enumerate(frames):
            tile = Image.fromarray(np.asarray(video[min(f, len(video)) - 1, 0])).resize((side, side), Image.NEAREST)
            canvas.paste(tile, (left + j * (side + gap), y))
    canvas.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=sorted(CLIPS), choices=sorted(CLIPS))
    parser.add_argument("--recipes", nargs="*", default=sorted(RECIPES), choices=sorted(RECIPES))
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(REPO / "work" / "long_videos"))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--steered-only", action="store_true", help="skip the unsteered generation")
    parser.add_argument("--same-start", action="store_true",
                        help="only generate and judge two steered videos from one start frame (models trained before)")
    parser.add_argument("--table", action="store_true", help="print the table of --results and exit")
    parser.add_argument("--figure", metavar="PNG", help="draw frames of the generated videos in --work to PNG and exit")
    args = parser.parse_args()
    if args.table:
        print(table(Path(args.results)))
        return
    if args.figure:
        figure(Path(args.work), Path(args.figure), args.clips)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for clip in args.clips:
        for recipe in args.recipes:
            for r in [same_start(clip, recipe, args, work)] if args.same_start else run_one(clip, recipe, args, work):
                with open(args.results, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
