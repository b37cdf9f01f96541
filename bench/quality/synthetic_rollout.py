"""Synthetic videos with exactly known, local dynamics: does a model that is near perfect one step ahead stay at least
90% right after 20 fed-back steps?

Videos (64 px, uint8 RGB; frame t+1 is an exact function of frames t-1 and t, every change is local):
``square`` (``tests.media.moving_square_frames``: 12 px, 2 px/frame, wrapping), ``bounce`` (three squares bouncing
exactly off the borders), ``scroll`` (a periodic texture, 2 px/frame right, loops every 32 frames), ``scroll_left1``
(the same texture 1 px/frame left, 40 frames: no scored frame is a training frame), ``diag`` (a torus texture moving
(1, -2) px/frame), ``torus`` (a bordered square wrapping over a torus texture), ``spin`` (a smooth disc pattern
rotating 7 degrees/frame: sub-pixel motion, nothing enters through the borders), ``orbit`` and ``balls`` (soft discs
at sub-pixel positions). Each is a dataset dir (first 75% of the frames train, the rest validate) and a model trained
with the default TrainSettings at a small budget (64 px, batch 8, ngf/ndf and steps from the command line;
``--variants TAG:FIELD=VALUE;...`` trains other settings too, e.g. ``u4:unroll_steps=4``). ``--steps 500,1000`` is a
ladder that stops at the first budget whose one step (plain, dropout off) reaches ``--near-perfect``, unless
``--all-steps``.

Metric, from ``--starts`` validation starts s (the true future past the video's end comes from the same rule), the
rollout's frame h against the true frame s+h, on the 0-255 scale: a pixel *changes* if the true frame or the
prediction differs from true frame s+h-1 by more than 32 on some channel; it is *right* if the prediction is within
32 of the truth on every channel. **right %** = changing pixels that are right / changing pixels, pooled over starts
(copying the last frame scores ~0, hallucinated motion counts against the model); **recall %** the same over the
truly changing pixels only; PSNR per frame (``videogen.measures``), mean over starts. Modes: copy the last frame,
plain rollout (``videogen.frames.rollout``) and steered rollout (``videogen.steering.steered_rollout`` with each of
``--looks``), dropout off and on (seed 0).

Run (models and data cached under work/synthetic/; a rerun only evaluates); writes work/synthetic/results.json and
bench/quality/synthetic_rollout.md:
    nice -n 19 env PYTHONPATH=$PWD .venv/bin/python bench/quality/synthetic_rollout.py \\
        --kinds spin,scroll_left1,scroll,diag,torus,square,bounce,orbit,balls --variants base: --steps 1000 \\
        --all-steps --looks patch,frame
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64
TOL = 32  # 0-255 levels: the change threshold and the "right" tolerance
HORIZONS = (1, 5, 10, 20)
TRAIN_SHARE = 0.75
DOCUMENTED = "spin,scroll_left1,scroll,diag,torus,square,bounce,orbit,balls"


# ------------------------------------------------------------------------------------------------------------ videos
def _gradient_background(size: int = SIZE) -> np.ndarray:
    g = np.linspace(30, 120, size, dtype=np.float32)[:, None]
    img = np.zeros((size, size, 3), np.float32)
    img[..., 0] = g
    img[..., 1] = g[::-1]
    img[..., 2] = 60
    return img


def square_frames(n: int) -> np.ndarray:
    from tests.media import moving_square_frames

    return moving_square_frames(n, SIZE)


def bounce_frames(n: int, seed: int = 3) -> np.ndarray:
    """Three 10 px squares at constant velocity, exact reflections off the borders, on the fixed gradient."""
    rng = np.random.default_rng(seed)
    sides = (8, 10, 12)
    colors = np.array([[250, 60, 60], [60, 230, 80], [80, 120, 255]], np.float32)
    pos = np.stack([rng.integers(0, SIZE - side, 2) for side in sides]).astype(int)
    vel = np.array([[1, 2], [-2, 3], [3, -1]])
    background = _gradient_background()
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        img = background.copy()
        for color, side, (y, x) in zip(colors, sides, pos):
            img[y:y + side, x:x + side] = color
        out[t] = img.astype(np.uint8)
        pos = pos + vel
        for i in range(3):
            for a in range(2):
                if pos[i, a] < 0:
                    pos[i, a], vel[i, a] = -pos[i, a], -vel[i, a]
                elif pos[i, a] > SIZE - sides[i]:
                    pos[i, a], vel[i, a] = 2 * (SIZE - sides[i]) - pos[i, a], -vel[i, a]
    return out


def _scroll_texture() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    u = 2 * np.pi * x / SIZE
    tex = np.stack([
        128 + 60 * np.sin(2 * u + y / 9.0) + 40 * np.sin(5 * u + 0.3),
        128 + 55 * np.sin(3 * u - y / 13.0 + 1.0) + 35 * np.cos(6 * u),
        128 + 50 * np.cos(4 * u + y / 7.0) + 30 * np.sin(u - y / 20.0),
    ], -1)
    return np.clip(np.round(tex), 0, 255).astype(np.uint8)


def _torus_texture(amplitude: float = 1.0) -> np.ndarray:
    """A smooth colour texture periodic in both x and y (64 px): a torus."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    u, v = 2 * np.pi * x / SIZE, 2 * np.pi * y / SIZE
    tex = np.stack([
        128 + amplitude * (55 * np.sin(2 * u + v) + 35 * np.sin(3 * v - u + 0.3)),
        128 + amplitude * (50 * np.sin(3 * u - 2 * v + 1.0) + 30 * np.cos(4 * v)),
        128 + amplitude * (45 * np.cos(u + 3 * v) + 30 * np.sin(5 * u - 0.7)),
    ], -1)
    return np.clip(np.round(tex), 0, 255).astype(np.uint8)


def scroll_frames(n: int, speed: int = 2) -> np.ndarray:
    """A smooth texture, periodic in x (64 px), shifted ``speed`` px right per frame (exact integer roll)."""
    tex = _scroll_texture()
    return np.stack([np.roll(tex, speed * t, axis=1) for t in range(n)])


def scroll_left1_frames(n: int) -> np.ndarray:
    """The scroll texture moving 1 px/frame to the LEFT (period 64 frames, longer than the 40-frame video: no scored
    frame, up to frame 60, equals a training frame)."""
    tex = _scroll_texture()
    return np.stack([np.roll(tex, -t, axis=1) for t in range(n)])


def diag_frames(n: int, dy: int = 1, dx: int = -2) -> np.ndarray:
    """A texture periodic in x and y translating (dy, dx) px/frame on the torus (period 64 frames)."""
    tex = _torus_texture()
    return np.stack([np.roll(tex, (dy * t, dx * t), axis=(0, 1)) for t in range(n)])


def torus_frames(n: int, side: int = 12, dy: int = 1, dx: int = 2) -> np.ndarray:
    """A white-bordered dark square moving (dy, dx) px/frame over a fixed, low-contrast torus texture, wrapping at the
    borders (period 64 frames)."""
    background = _torus_texture(amplitude=0.5)
    sprite = np.full((side, side, 3), 30, np.uint8)
    sprite[:2], sprite[-2:], sprite[:, :2], sprite[:, -2:] = 250, 250, 250, 250
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        img = background.copy()
        ys = (5 + dy * t + np.arange(side)) % SIZE
        xs = (9 + dx * t + np.arange(side)) % SIZE
        img[np.ix_(ys, xs)] = sprite
        out[t] = img
    return out


def spin_frames(n: int, degrees: float = 7.0, radius: float = 27.0, taper: float = 4.0) -> np.ndarray:
    """A smooth colour pattern on a disc rotating ``degrees``/frame about the centre, its edge a smooth taper into a
    constant grey: nothing enters through the frame's borders, every pixel moves at most ~3.3 px/frame, and with 7
    degrees (coprime with 360) no frame before frame 360 repeats an earlier one. Computed analytically per frame."""
    c = np.arange(SIZE, dtype=np.float64) + 0.5 - SIZE / 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r, phi = np.hypot(yy, xx), np.arctan2(yy, xx)
    mask = np.clip((radius - r) / taper, 0.0, 1.0)
    mask = mask * mask * (3 - 2 * mask)  # smoothstep
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        a = phi - math.radians(degrees * t)
        q = r / radius
        pattern = np.stack([
            128 + 70 * np.sin(6 * a + 4.0 * q) * q + 20 * np.cos(a),
            128 + 65 * np.cos(5 * a - 5.0 * q) * q + 25 * np.sin(8 * a) * q,
            128 + 60 * np.sin(7 * a + 1.0) * q ** 1.5 - 25 * np.cos(3 * a + 2 * q),
        ], -1)
        out[t] = np.clip(np.round(110 + (pattern - 110) * mask[..., None]), 0, 255).astype(np.uint8)
    return out


def _soft_discs(centres: np.ndarray, radii, colors: np.ndarray) -> np.ndarray:
    """Discs (uint8 frame) with a 2 px smoothstep edge, drawn in order over the fixed gradient at sub-pixel centres
    ``(D, 2)`` (y, x in px from the top-left corner)."""
    c = np.arange(SIZE, dtype=np.float64) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    img = _gradient_background().astype(np.float64)
    for (cy, cx), radius, color in zip(centres, radii, colors):
        cover = np.clip((radius - np.hypot(yy - cy, xx - cx)) / 2.0 + 0.5, 0.0, 1.0)
        cover = (cover * cover * (3 - 2 * cover))[..., None]
        img = img * (1 - cover) + color * cover
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


DISC_COLORS = np.array([[250, 70, 60], [70, 230, 90], [90, 130, 255]], np.float64)


def orbit_frames(n: int) -> np.ndarray:
    """Three soft discs (radius 4 px) orbiting the centre on separate rings (radii 8, 17 and 26 px) at 9, -5 and 3
    degrees/frame (1.3-1.5 px/frame, sub-pixel positions): nothing enters through the borders and the joint period
    is 360 frames, so no scored frame repeats a training frame. Computed analytically per frame."""
    rings, speeds = np.array([8.0, 17.0, 26.0]), np.radians([9.0, -5.0, 3.0])
    phase = np.array([0.3, 2.1, 4.0])
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        a = phase + speeds * t
        centres = np.stack([SIZE / 2 + rings * np.sin(a), SIZE / 2 + rings * np.cos(a)], -1)
        out[t] = _soft_discs(centres, (4.0, 4.0, 4.0), DISC_COLORS)
    return out


def balls_frames(n: int) -> np.ndarray:
    """Three soft discs (radius 5, 6 and 7 px) at constant sub-pixel velocities (0.7-1.7 px/frame per axis) reflecting
    exactly off the borders (each centre follows a triangle wave between radius and 64 - radius), drawn in a fixed
    order where they overlap: local dynamics, nothing enters through the borders, and no scored frame repeats a
    training frame. Computed analytically per frame."""
    radii = np.array([5.0, 6.0, 7.0])
    start = np.array([[12.0, 40.0], [30.0, 15.0], [50.0, 47.0]])
    velocity = np.array([[0.9, 1.7], [-1.3, 0.7], [1.1, -1.2]])
    span = (SIZE - 2 * radii)[:, None]
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        u = np.mod(start - radii[:, None] + velocity * t, 2 * span)
        centres = radii[:, None] + np.where(u <= span, u, 2 * span - u)
        out[t] = _soft_discs(centres, radii, DISC_COLORS)
    return out


KINDS = {"square": (square_frames, 96), "bounce": (bounce_frames, 160), "scroll": (scroll_frames, 128),
         "scroll_left1": (scroll_left1_frames, 40), "diag": (diag_frames, 128), "torus": (torus_frames, 128),
         "spin": (spin_frames, 120), "orbit": (orbit_frames, 120), "balls": (balls_frames, 160)}


def make_dataset(kind: str, out_dir: Path, extra: int) -> tuple[Path, np.ndarray, dict]:
    """Write the dataset dir (its first T frames) and return it with T + ``extra`` true frames (the exact future)."""
    make, n = KINDS[kind]
    frames = make(n + extra)
    n_train = int(TRAIN_SHARE * n)
    info = {"fps": 25.0, "image_size": SIZE, "num_frames": n, "source": f"synthetic:{kind}",
            "train": [0, n_train], "val": [n_train + 1, n - 1], "start_frame": n_train + 1}
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "frames.npy").exists() or not np.array_equal(np.load(out_dir / "frames.npy"), frames[:n]):
        np.save(out_dir / "frames.npy", frames[:n])
        (out_dir / "dataset.json").write_text(json.dumps(info))
    return out_dir, frames, info


# ------------------------------------------------------------------------------------------------------------ metric
def summarize(frames: list[np.ndarray], truth: np.ndarray, starts: list[int]) -> dict:
    """Right %, recall %, worst start and PSNR at each horizon; frames: the rollout, h = 1..n, each (V,S,S,3)."""
    from videogen.measures import psnr_per_image

    out = {}
    for h in (h for h in HORIZONS if h <= len(frames)):
        pred, true = frames[h - 1], truth[[s + h for s in starts]]
        p, t, q = (a.astype(np.int16) for a in (pred, true, truth[[s + h - 1 for s in starts]]))
        true_change = np.abs(t - q).max(-1) > TOL
        changing = true_change | (np.abs(p - q).max(-1) > TOL)
        right = np.abs(p - t).max(-1) <= TOL
        per_start = (right & changing).sum((1, 2)) / np.maximum(changing.sum((1, 2)), 1)
        out[h] = {"right_pct": 100.0 * (right & changing).sum() / max(changing.sum(), 1),
                  "recall_pct": 100.0 * (right & true_change).sum() / max(true_change.sum(), 1),
                  "worst_start_right_pct": 100.0 * per_start.min(),
                  "psnr": float(np.mean(psnr_per_image(pred, true)))}
    return out


# ------------------------------------------------------------------------------------------------------ train / eval
def _data_sha(dataset: Path) -> str:
    return hashlib.sha256((dataset / "frames.npy").read_bytes()).hexdigest()[:16]


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """``"base:,u4:unroll_steps=4"`` -> [(tag, {TrainSettings field: value})]; ``;`` joins two fields."""
    from videogen.train import TrainSettings

    types = {f.name: f.type for f in dataclasses.fields(TrainSettings)}
    cast = {"int": int, "float": float, "bool": lambda v: v.lower() == "true"}
    out = []
    for item in text.split(","):
        tag, _, spec = item.partition(":")
        pairs = [pair.partition("=") for pair in filter(None, spec.split(";"))]
        out.append((tag, {name: cast.get(types[name], str)(value) for name, _, value in pairs}))
    return out


def train_model(dataset: Path, model_dir: Path, steps: int, ngf: int, extra: dict) -> dict:
    """The model trained on ``dataset`` (cached in ``model_dir`` while the frames are the same)."""
    from videogen.train import TrainSettings, train

    sha_file = model_dir / "data.sha"
    if sha_file.exists() and sha_file.read_text().strip() != _data_sha(dataset):
        shutil.rmtree(model_dir)  # trained on other frames (the video's rule changed): train again
    if all((model_dir / name).exists() for name in ("generator.keras", "model.json", "steering.npz")):
        return {**json.loads((model_dir / "model.json").read_text()), "cached": True}
    # Everything else is TrainSettings' default (precision auto = bfloat16 on a CPU with native bf16).
    settings = TrainSettings(max_steps=steps, batch_size=8, ngf=ngf, ndf=ngf, log_every=100,
                             checkpoint_every=max(steps, 1000), **extra)
    t0 = time.perf_counter()
    info = train(dataset, model_dir, settings)
    sha_file.write_text(_data_sha(dataset))
    return {**info, "wall_s": time.perf_counter() - t0, "cached": False}


def evaluate(model_dir: Path, truth: np.ndarray, info: dict, n_starts: int, horizon: int, looks: list[str]) -> dict:
    from videogen import steering
    from videogen.frames import rollout, stack_context
    from videogen.generator_io import load_generator

    model, _ = load_generator(model_dir)
    k = int(model.input_shape[3]) // 3
    targets = steering.load_targets(model_dir)
    starts = sorted(set(np.linspace(info["val"][0] + k - 1, info["num_frames"] - 1, n_starts).round().astype(int)
                        .tolist()))
    assert max(starts) + horizon < len(truth)
    context = np.stack([stack_context(truth[s - k + 1:s + 1]) for s in starts])
    modes = {}

    def run(name, make_frames, controllers=None):
        t0 = time.perf_counter()
        modes[name] = {"horizons": summarize(list(make_frames()), truth, starts), "seconds": time.perf_counter() - t0}
        if controllers is not None:  # where the controllers ended after `horizon` frames (mean over starts)
            modes[name]["controllers_end"] = {"tau": float(np.mean(controllers.tau)),
                                              "unsharp": float(np.mean(controllers.amount)),
                                              "anchor_weight": float(np.mean(controllers.weight))}
        r = modes[name]["horizons"]
        print(f"    {name:30s} right@1 {r[1]['right_pct']:6.2f}  right@{horizon} {r[horizon]['right_pct']:6.2f}  "
              f"psnr@1 {r[1]['psnr']:5.2f}  ({modes[name]['seconds']:.1f} s)", flush=True)

    run("copy last frame", lambda: [truth[starts]] * horizon)
    run("plain, dropout off", lambda: rollout(model, context, horizon, k, deterministic=True))
    run("plain, dropout on", lambda: rollout(model, context, horizon, k, deterministic=False, seed=0))
    for look in looks if targets is not None else []:
        for deterministic in (False, True):
            controllers = steering.Controllers(targets, len(starts), seed=0, look=look)
            run(f"steered ({look}), dropout {'off' if deterministic else 'on'}",
                lambda d=deterministic, c=controllers: steering.steered_rollout(model, targets, context, horizon, k,
                                                                                 c, d, seed=0), controllers)
    return {"starts": starts, "context_frames": k, "modes": modes}


# ----------------------------------------------------------------------------------------------------------- report
def cpu_note() -> str:
    from videogen.hardware import cpu_flags, cpuinfo_field

    flags = [f for f in ("avx512_bf16", "amx_bf16", "avx2") if f in cpu_flags()]
    return (f"{cpuinfo_field('model name') or 'unknown CPU'}, {os.cpu_count()} cores, flags: "
            f"{', '.join(flags) or 'none of avx512_bf16, amx_bf16, avx2'}; load average at the end "
            f"{os.getloadavg()[0]:.1f}")


def markdown(results: dict, horizon: int) -> str:
    lines = [
        "# Synthetic videos: one step vs 20 fed-back steps", "",
        f"Generated by `bench/quality/synthetic_rollout.py` ({results['finished']}). {results['cpu']}. "
        f"Command: `{results['command']}`.", "",
        "Requirement: on synthetic videos with exactly known, local dynamics, 20 fed-back steps stay at least 90% "
        "right where one step is near perfect.", "",
        f"**right %**: over the pixels that change (true frame h vs true frame h-1 differ by > {TOL}/255 on some "
        f"channel, or the prediction differs from true frame h-1 by > {TOL}/255), the share whose prediction is within "
        f"{TOL}/255 of the true frame h on every channel, pooled over the start frames. **recall %**: the same over the "
        f"truly changing pixels only. h=1: one step from a real validation context; h={horizon}: "
        f"{horizon - 1} of the model's own frames fed back. PSNR: whole frame, mean over starts. "
        "Train s: wall seconds of `videogen.train.train` (default TrainSettings but the variant's, batch 8, 64 px) as "
        "recorded when the model was trained (cached models keep it): compare train s within a batch of runs only.", "",
        f"| video | steps / ngf | variant | train s | mode | right % h=1 | right % h=10 | right % h={horizon} | worst "
        f"start h={horizon} | recall % h=1 / h={horizon} | PSNR h=1 | PSNR h={horizon} | eval s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ends = []
    for run in results["runs"]:
        train, settings = run["train"], run["settings"]
        variant = run["variant"] + (" (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else "")
        train_s = f"{train.get('wall_s') or train.get('duration_s') or 0:.0f}{' (cached)' if train['cached'] else ''}"
        for name, mode in run["eval"]["modes"].items():
            h1, h10, hn = (mode["horizons"].get(h) for h in (1, 10, horizon))
            h10 = f"{h10['right_pct']:.1f}" if h10 else "-"
            lines.append(
                f"| {run['kind']} | {run['steps']} / {run['ngf']} | {variant} | {train_s} | {name} "
                f"| {h1['right_pct']:.1f} | {h10} | {hn['right_pct']:.1f} "
                f"| {hn['worst_start_right_pct']:.1f} | {h1['recall_pct']:.1f} / {hn['recall_pct']:.1f} "
                f"| {h1['psnr']:.2f} | {hn['psnr']:.2f} | {mode['seconds']:.1f} |")
            if "controllers_end" in mode:
                end = mode["controllers_end"]
                ends.append(f"{run['kind']} {run['steps']} {run['variant']} {name}: tau {end['tau']:.2f}, "
                            f"unsharp {end['unsharp']:.2f}, look weight {end['anchor_weight']:.2f}")
    if ends:
        lines += ["", f"Steering controllers after {horizon} frames (mean over starts): " + "; ".join(ends) + "."]
    repeats = ", ".join(f"{kind} {count}" for kind, count in results["repeats"].items())
    starts = "; ".join(f"{run['kind']} ({run['steps']} steps {run['variant']}): frames {run['eval']['starts']}"
                       for run in results["runs"])
    lines += ["", "Validation and future frames (the ones scored) that are exact copies of a training frame: "
              f"{repeats} (on a looping video the whole-frame look can replay the true frame).", "",
              f"Starts per video: {starts}.", "", f"Total wall time {results['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=DOCUMENTED, help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--steps", default="1000",
                        help="training budgets in order (a ladder): STEPS or STEPSxNGF (ngf = ndf), comma-separated")
    parser.add_argument("--all-steps", action="store_true",
                        help="every budget of --steps, not a ladder that stops at the first near-perfect one")
    parser.add_argument("--near-perfect", type=float, default=98.0,
                        help="one-step right %% (plain, dropout off) at which the ladder stops")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--variants", default="base:",
                        help="training variants, comma-separated TAG:FIELD=VALUE;FIELD=VALUE (TrainSettings fields; "
                             "an empty spec is the defaults, in model-STEPS-ngfN/, others in model-STEPS-ngfN-TAG/)")
    parser.add_argument("--looks", default="patch", help="comma-separated steering looks to score: patch, frame")
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "synthetic")
    parser.add_argument("--md", type=Path, default=ROOT / "bench" / "quality" / "synthetic_rollout.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()
    results = {"command": "nice -n 19 env PYTHONPATH=$PWD .venv/bin/python bench/quality/synthetic_rollout.py "
                          + " ".join(sys.argv[1:] if argv is None else argv), "runs": [], "repeats": {}}
    for kind in args.kinds.split(","):
        dataset, truth, info = make_dataset(kind, args.work / kind / "data", extra=args.horizon + 1)
        train_frames = truth[:info["train"][1] + 1].reshape(info["train"][1] + 1, -1)
        future = truth[info["val"][0]:]  # the validation frames and the exact future the scores look at
        repeats = sum(bool((train_frames == f.reshape(1, -1)).all(1).any()) for f in future)
        results["repeats"][kind] = f"{repeats}/{len(future)}"
        print(f"{kind}: {info['num_frames']} frames, train pairs {info['train']}, val {info['val']}; "
              f"{repeats}/{len(future)} scored frames equal a training frame", flush=True)
        for tag, extra in parse_variants(args.variants):
            for rung in args.steps.split(","):
                steps, _, ngf = rung.partition("x")
                steps, ngf = int(steps), int(ngf or args.ngf)
                model_dir = args.work / kind / f"model-{steps}-ngf{ngf}{f'-{tag}' if extra else ''}"
                t0 = time.perf_counter()
                train_info = train_model(dataset, model_dir, steps, ngf, extra)
                print(f"  {kind} {steps} steps ngf {ngf} {tag}: trained in {time.perf_counter() - t0:.0f} s"
                      f"{' (cached)' if train_info['cached'] else ''}", flush=True)
                ev = evaluate(model_dir, truth, info, args.starts, args.horizon, args.looks.split(","))
                results["runs"].append({"kind": kind, "steps": steps, "ngf": ngf, "variant": tag, "settings": extra,
                                        "train": {k: train_info.get(k) for k in ("wall_s", "duration_s", "cached",
                                                                                 "train_images_per_s", "precision")},
                                        "eval": ev})
                (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
                if not args.all_steps and \
                        ev["modes"]["plain, dropout off"]["horizons"][1]["right_pct"] >= args.near_perfect:
                    break
    results.update(cpu=cpu_note(), finished=time.strftime("%Y-%m-%d %H:%M"), wall_s=time.perf_counter() - t_start)
    (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    md = markdown(results, args.horizon)
    args.md.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
