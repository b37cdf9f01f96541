"""Synthetic videos with exactly known, local dynamics: does a model that is near perfect one step ahead stay at least
90% right after 20 fed-back steps?

Requirement measured: "On synthetic videos whose dynamics are exactly known and local (make several), 20 fed-back
steps stay at least 90% right where one step is near perfect."

Videos (64 px, uint8 RGB; frame t+1 is an exact function of frames t-1 and t, and every change is local):

- ``square``: ``tests.media.moving_square_frames`` (a 12 px square moving 2 px/frame right, wrapping, on a fixed
  gradient; period 32 frames), 96 frames;
- ``bounce``: three coloured squares (8, 10 and 12 px) at constant speed (1-3 px/frame per axis) bouncing exactly off
  the borders on a fixed gradient (drawn in a fixed order where they overlap), 160 frames; the three sizes make the
  joint period 39312 frames, so no scored frame repeats a training frame;
- ``scroll``: a smooth periodic colour texture (sums of sines, period 64 px in x) scrolling 2 px/frame to the right
  (period 32 frames: the scene loops), 128 frames;
- ``bar``: a 52 x 6 px bar rotating 6 degrees/frame about the centre on a fixed gradient, antialiased by 4x4
  supersampling (period 30 frames), 120 frames;
- ``scroll_left1``: the scroll texture moving 1 px/frame to the left, 40 frames: no scored frame (up to frame 60) is a
  training frame (period 64), so steering cannot replay the truth;
- ``diag``: a texture periodic in x and y translating (1, -2) px/frame on the torus (period 64 frames), 128 frames;
- ``torus``: a 12 px white-bordered dark square moving (1, 2) px/frame over a fixed low-contrast torus texture,
  wrapping (period 64 frames), 128 frames;
- ``spin``: a smooth colour pattern on a disc (soft edge, grey outside) rotating 7 degrees/frame, computed
  analytically: nothing enters through the frame's borders, motion is sub-pixel, and no frame repeats before frame
  360, 120 frames.

``--variants`` trains and scores other TrainSettings (``u4:unroll_steps=4``; model dirs ``model-STEPS-ngfN-TAG``);
``jitter=flip`` (bench only) swaps the train stage's jitter for the random mirror alone (no resize, no crop).

Each video is a dataset dir (frames.npy + dataset.json as tests/unit/test_quality.py writes them: the first 75% of the
frames train, the rest validate) and a model trained with the default TrainSettings except a small budget (64 px,
batch 8, ngf/ndf and steps from the command line; a ladder ``--steps 500,1000`` trains fresh at each budget and stops
at the first whose one-step score, dropout off, reaches ``--near-perfect``).

Metric, from ``--starts`` validation start frames s (the context is the K real frames ending at s, all in the
validation block; the true future beyond the video's end comes from the same exact rule): the rollout's frame h is
compared with the true frame s+h (h=1 is the one teacher-forced step from the real context; h=20 has fed back 19 of
the model's own frames). With T_h the true frame s+h, T_0 the last real context frame and P_h the prediction, all on
the 0-255 scale:

- a pixel *changes* if max over channels |T_h - T_{h-1}| > 32, or the prediction moved it: max |P_h - T_{h-1}| > 32;
- a pixel is *right* if max over channels |P_h - T_h| <= 32;
- **right %** = (changing pixels that are right) / (changing pixels), pooled over all starts. The second clause of
  "changes" makes ghosts, smears and colour drift anywhere in the frame count against the model, so copying the last
  frame scores ~0 and hallucinated motion cannot hide;
- **recall %** = the same over the pixels whose *true* value changes only (first clause alone; the score of
  bench/quality/long/synth.py, there with a 64-level tolerance);
- PSNR: whole-frame, peak 255, mean over starts (MSE floored at 1e-3, i.e. at most ~78 dB).

Modes: copy (the last real frame; a floor), plain rollout (``videogen.frames.rollout``) with dropout off and on, and
steered rollout (``videogen.steering.steered_rollout`` with the targets the train stage saved) with dropout on and
off. Dropout-on rows use seed 0 (each start draws its own noise within the batch).

Run (models and data cached under work/synthetic/; a rerun only evaluates):
    nice -n 19 env PYTHONPATH=$PWD .venv/bin/python bench/quality/synthetic_rollout.py
Writes work/synthetic/results.json and bench/quality/synthetic_rollout.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
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


def bar_frames(n: int, degrees: float = 6.0, length: float = 52.0, width: float = 6.0, ss: int = 4) -> np.ndarray:
    """A bar rotating about the centre, antialiased (ss x ss supersampling), on the fixed gradient."""
    c = (np.arange(SIZE * ss, dtype=np.float32) + 0.5) / ss - SIZE / 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    background = _gradient_background()
    color = np.array([250, 230, 60], np.float32)
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        th = math.radians(degrees * t)
        along = xx * math.cos(th) + yy * math.sin(th)
        across = -xx * math.sin(th) + yy * math.cos(th)
        inside = ((np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)).astype(np.float32)
        cover = inside.reshape(SIZE, ss, SIZE, ss).mean(axis=(1, 3))[..., None]
        out[t] = np.round(background * (1 - cover) + color * cover).astype(np.uint8)
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
         "bar": (bar_frames, 120), "scroll_left1": (scroll_left1_frames, 40), "diag": (diag_frames, 128),
         "torus": (torus_frames, 128), "spin": (spin_frames, 120), "orbit": (orbit_frames, 120),
         "balls": (balls_frames, 160)}


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
def score_frames(pred: np.ndarray, true: np.ndarray, prev: np.ndarray) -> dict:
    """Counts for predictions (V,S,S,3) vs the true frames and the true frames one step before (all uint8)."""
    p, t, q = (a.astype(np.int16) for a in (pred, true, prev))
    true_change = np.abs(t - q).max(-1) > TOL
    pred_change = np.abs(p - q).max(-1) > TOL
    right = np.abs(p - t).max(-1) <= TOL
    changing = true_change | pred_change
    mse = ((p.astype(np.float64) - t) ** 2).reshape(len(p), -1).mean(1)
    per_start = (right & changing).reshape(len(p), -1).sum(1) / np.maximum(changing.reshape(len(p), -1).sum(1), 1)
    return {"right": int((right & changing).sum()), "changing": int(changing.sum()),
            "recall_right": int((right & true_change).sum()), "true_changing": int(true_change.sum()),
            "psnr": float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-3)))),
            "worst_start": float(per_start.min())}


def summarize(frames: list[np.ndarray], truth: np.ndarray, starts: list[int]) -> dict:
    """frames: the rollout, h = 1..n, each (V,S,S,3); truth: the whole true sequence."""
    out = {}
    for h in HORIZONS:
        if h > len(frames):
            continue
        c = score_frames(frames[h - 1], truth[[s + h for s in starts]], truth[[s + h - 1 for s in starts]])
        out[h] = {"right_pct": 100.0 * c["right"] / max(c["changing"], 1),
                  "recall_pct": 100.0 * c["recall_right"] / max(c["true_changing"], 1),
                  "worst_start_right_pct": 100.0 * c["worst_start"], "psnr": c["psnr"],
                  "changing_px_per_frame": c["changing"] / len(starts),
                  "true_changing_px_per_frame": c["true_changing"] / len(starts)}
    return out


# ------------------------------------------------------------------------------------------------------ train / eval
def _data_sha(dataset: Path) -> str:
    return hashlib.sha256((dataset / "frames.npy").read_bytes()).hexdigest()[:16]


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """``"base:,u4:unroll_steps=4,n02:input_noise=0.02"`` -> [(tag, {field: value})]; ``;`` joins two fields."""
    from videogen.train import TrainSettings

    types = {f.name: f.type for f in __import__("dataclasses").fields(TrainSettings)}
    out = []
    for item in text.split(","):
        tag, _, spec = item.partition(":")
        fields = {}
        for pair in filter(None, spec.split(";")):
            name, _, value = pair.partition("=")
            if name == "jitter":  # not a setting: the bench swaps the train stage's jitter (flip = mirror only)
                fields[name] = value
                continue
            fields[name] = {"int": int, "float": float, "bool": lambda v: v.lower() == "true"}.get(types[name], str)(value)
        out.append((tag, fields))
    return out


def train_model(dataset: Path, model_dir: Path, steps: int, ngf: int, extra: dict | None = None) -> dict:
    from videogen.train import TrainSettings, train

    sha_file = model_dir / "data.sha"
    if sha_file.exists() and sha_file.read_text().strip() != _data_sha(dataset):
        shutil.rmtree(model_dir)  # trained on other frames (the generator changed): train again
    if (model_dir / "generator.keras").exists() and (model_dir / "model.json").exists() and \
            (model_dir / "steering.npz").exists():
        info = json.loads((model_dir / "model.json").read_text())
        info["cached"] = True
        return info
    # Everything else is TrainSettings' default (K=2, residual, GroupNorm, dropout 0.5, gan 0.1, l1 100, precision
    # auto = bfloat16 on a CPU with avx512_bf16).
    extra = dict(extra or {})
    jitter = extra.pop("jitter", None)
    settings = TrainSettings(max_steps=steps, batch_size=8, ngf=ngf, ndf=ngf, log_every=100,
                             checkpoint_every=max(steps, 1000), **extra)
    from videogen.train import data as data_module

    original = data_module.jitter
    if jitter == "flip":  # the random mirror only: no resize (its bilinear resampling softens sharp edges), no crop
        def flip_only(inputs, target, image_size, seed):
            import tensorflow as tf

            channels = inputs.shape[-1]
            stacked = tf.concat([inputs, target], axis=-1)
            seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
            stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[1])
            return stacked[..., :channels], stacked[..., channels:]

        data_module.jitter = flip_only
    elif jitter is not None:
        raise ValueError(f"jitter={jitter!r}: only flip")
    t0 = time.perf_counter()
    try:
        info = train(dataset, model_dir, settings)
    finally:
        data_module.jitter = original
    info["wall_s"] = time.perf_counter() - t0
    sha_file.write_text(_data_sha(dataset))
    info["cached"] = False
    return info


def evaluate(model_dir: Path, truth: np.ndarray, info: dict, n_starts: int, horizon: int,
             steered: bool = True, looks: tuple[str, ...] = ("patch",)) -> dict:
    from videogen import steering
    from videogen.frames import rollout, stack_context
    from videogen.generator_io import load_generator

    model, _ = load_generator(model_dir)
    k = int(model.input_shape[3]) // 3
    targets = steering.load_targets(model_dir)
    val_first, last = info["val"][0], info["num_frames"] - 1
    starts = sorted(set(np.linspace(val_first + k - 1, last, n_starts).round().astype(int).tolist()))
    assert max(starts) + horizon < len(truth)
    context = np.stack([stack_context(truth[s - k + 1:s + 1]) for s in starts])
    modes = {}

    def run(name, make_frames, controllers=None):
        t0 = time.perf_counter()
        frames = list(make_frames())
        modes[name] = {"horizons": summarize(frames, truth, starts), "seconds": time.perf_counter() - t0}
        if controllers is not None:  # where the controllers ended after `horizon` frames (mean over starts)
            modes[name]["controllers_end"] = {"tau": float(np.mean(controllers.tau)),
                                              "unsharp": float(np.mean(controllers.amount)),
                                              "anchor_weight": float(np.mean(controllers.weight))}
        r = modes[name]["horizons"]
        print(f"    {name:22s} right@1 {r[1]['right_pct']:6.2f}  right@20 {r[horizon]['right_pct']:6.2f}  "
              f"psnr@1 {r[1]['psnr']:5.2f}  psnr@20 {r[horizon]['psnr']:5.2f}  ({modes[name]['seconds']:.1f} s)",
              flush=True)

    run("copy last frame", lambda: [truth[starts]] * horizon)
    run("plain, dropout off", lambda: rollout(model, context, horizon, k, deterministic=True))
    run("plain, dropout on", lambda: rollout(model, context, horizon, k, deterministic=False, seed=0))
    if targets is not None and steered:
        for look in looks:
            for deterministic in (False, True):
                name = f"steered ({look}), dropout {'off' if deterministic else 'on'}"
                controllers = steering.Controllers(targets, len(starts), seed=0, look=look)
                run(name, lambda d=deterministic, c=controllers: steering.steered_rollout(
                    model, targets, context, horizon, k, c, d, seed=0), controllers)
    return {"starts": starts, "context_frames": k, "modes": modes}


# ----------------------------------------------------------------------------------------------------------- report
def cpu_note() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    names = [f for f in ("avx512_bf16", "avx2") if f" {f}" in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, flags: "
            f"{', '.join(names) or 'neither avx512_bf16 nor avx2'}; load average at the end {load:.1f}")


def _variant(run: dict) -> str:
    settings = run.get("settings") or {}
    return run.get("variant", "base") + (" (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"
                                          if settings else "")


def markdown(results: dict, horizon: int) -> str:
    lines = [
        "# Synthetic videos: one step vs 20 fed-back steps",
        "",
        f"Generated by `bench/quality/synthetic_rollout.py` ({results['finished']}). {results['cpu']}. "
        f"Command: `{results['command']}`.",
        "",
        "Requirement: on synthetic videos with exactly known, local dynamics, 20 fed-back steps stay at least 90% "
        "right where one step is near perfect.",
        "",
        f"**right %**: over the pixels that change (true frame h vs true frame h-1 differ by > {TOL}/255 on some "
        f"channel, or the prediction differs from true frame h-1 by > {TOL}/255), the share whose prediction is within "
        f"{TOL}/255 of the true frame h on every channel, pooled over the start frames. **recall %**: the same over the "
        f"truly changing pixels only. h=1: one step from a real validation context; h={horizon}: "
        f"{horizon - 1} of the model's own frames fed back. PSNR: whole frame, mean over starts. "
        "Train s: wall seconds of `videogen.train.train` (default TrainSettings but the variant's, batch 8, 64 px), "
        "niced, on a shared 2-core CPU, as recorded when the model was trained (cached models keep it): runs that "
        "shared the CPU with other jobs took up to 10x longer, so compare train s within a batch of runs only.",
        "",
        f"| video | steps / ngf | variant | train s | mode | right % h=1 | right % h=10 | right % h={horizon} | worst start h={horizon} "
        f"| recall % h=1 / h={horizon} | PSNR h=1 | PSNR h={horizon} | eval s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        train_s = run["train"].get("wall_s") or run["train"].get("duration_s")
        for name, mode in run["eval"]["modes"].items():
            r = mode["horizons"]
            h1, hn = r[1] if 1 in r else r["1"], r[horizon] if horizon in r else r[str(horizon)]
            h10 = r.get(10) or r.get("10")
            h10_text = f"{h10['right_pct']:.1f}" if h10 else "-"
            cached = " (cached)" if run["train"].get("cached") else ""
            lines.append(
                f"| {run['kind']} | {run['steps']} / {run['ngf']} | {_variant(run)} | {train_s:.0f}{cached} | {name} "
                f"| {h1['right_pct']:.1f} | {h10_text} | {hn['right_pct']:.1f} | {hn['worst_start_right_pct']:.1f} "
                f"| {h1['recall_pct']:.1f} / {hn['recall_pct']:.1f} | {h1['psnr']:.2f} | {hn['psnr']:.2f} "
                f"| {mode['seconds']:.1f} |")
    lines.append("")
    ends = [f"{run['kind']} {run['steps']} {run.get('variant', 'base')} {name}: tau {m['controllers_end']['tau']:.2f}, "
            f"unsharp {m['controllers_end']['unsharp']:.2f}, look weight {m['controllers_end']['anchor_weight']:.2f}"
            for run in results["runs"] for name, m in run["eval"]["modes"].items() if "controllers_end" in m]
    if ends:
        lines.append(f"Steering controllers after {horizon} frames (mean over starts): " + "; ".join(ends) + ".")
        lines.append("")
    lines.append("Validation and future frames (the ones scored) that are exact copies of a training frame: " + ", ".join(
        f"{kind} {count}" for kind, count in results.get("repeats", {}).items()) + " (on a looping video "
        "the whole-frame look can replay the true frame).")
    lines.append("")
    lines.append("Starts per video: " + "; ".join(
        f"{run['kind']} ({run['steps']} steps {run.get('variant', 'base')}): frames {run['eval']['starts']}"
        for run in results["runs"]) + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="square,bounce,scroll,bar")
    parser.add_argument("--steps", default="500,1000,3000,1500x32",
                        help="training budgets to try in order (a ladder): STEPS or STEPSxNGF (ngf = ndf)")
    parser.add_argument("--no-train", action="store_true", help="only evaluate the models already trained")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--near-perfect", type=float, default=98.0,
                        help="one-step right %% (plain, dropout off) at which the ladder stops")
    parser.add_argument("--variants", default="base:",
                        help="training variants, comma-separated TAG:FIELD=VALUE;FIELD=VALUE (TrainSettings fields; "
                             "an empty spec is the default settings, its models in model-STEPS-ngfN/, others in "
                             "model-STEPS-ngfN-TAG/), e.g. base:,u4:unroll_steps=4")
    parser.add_argument("--no-steered", action="store_true", help="skip the steered rollouts")
    parser.add_argument("--looks", default="patch",
                        help="comma-separated steering looks to score (videogen.steering.LOOKS: patch, frame)")
    parser.add_argument("--all-steps", action="store_true",
                        help="every budget of --steps, not a ladder that stops at the first near-perfect one")
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--work", default=str(ROOT / "work" / "synthetic"))
    parser.add_argument("--md", default=str(ROOT / "bench" / "quality" / "synthetic_rollout.md"))
    parser.add_argument("--budget-s", type=float, default=2400.0,
                        help="skip further training once this many wall seconds have passed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results = {"command": "nice -n 19 env PYTHONPATH=$PWD .venv/bin/python "
                          "bench/quality/synthetic_rollout.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "runs": [], "skipped": []}
    for kind in args.kinds.split(","):
        dataset, truth, info = make_dataset(kind, work / kind / "data", extra=args.horizon + 1)
        train_frames = truth[:info["train"][1] + 1].reshape(info["train"][1] + 1, -1)
        future = truth[info["val"][0]:]  # the validation frames and the exact future the 20-step scores look at
        repeats = sum(bool((train_frames == f.reshape(1, -1)).all(1).any()) for f in future)
        results.setdefault("repeats", {})[kind] = f"{repeats}/{len(future)}"
        print(f"{kind}: {info['num_frames']} frames, train pairs {info['train']}, val {info['val']}; "
              f"{repeats}/{len(future)} scored frames equal a training frame", flush=True)
        for tag, extra in parse_variants(args.variants):
            suffix = f"-{tag}" if extra else ""
            for rung in args.steps.split(","):
                steps, _, ngf = rung.partition("x")
                steps, ngf = int(steps), int(ngf or args.ngf)
                model_dir = work / kind / f"model-{steps}-ngf{ngf}{suffix}"
                label = f"{kind} {steps} steps ngf {ngf} {tag}"
                cached = (model_dir / "steering.npz").exists()
                if not cached and args.no_train:
                    continue
                if not cached and time.perf_counter() - t_start > args.budget_s:
                    results["skipped"].append(f"{label} (time budget)")
                    print(f"  skip {label}: time budget spent", flush=True)
                    break
                t0 = time.perf_counter()
                train_info = train_model(dataset, model_dir, steps, ngf, extra)
                print(f"  {label}: trained in {time.perf_counter() - t0:.0f} s"
                      f"{' (cached)' if train_info.get('cached') else ''}", flush=True)
                ev = evaluate(model_dir, truth, info, args.starts, args.horizon, steered=not args.no_steered,
                              looks=tuple(args.looks.split(",")))
                results["runs"].append({"kind": kind, "steps": steps, "ngf": ngf, "variant": tag, "settings": extra,
                                        "train": {k: train_info.get(k) for k in ("wall_s", "duration_s", "cached",
                                                                                 "train_images_per_s", "precision")},
                                        "eval": ev})
                (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
                if not args.all_steps and \
                        ev["modes"]["plain, dropout off"]["horizons"][1]["right_pct"] >= args.near_perfect:
                    break
    results["cpu"] = cpu_note()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    results["wall_s"] = time.perf_counter() - t_start
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    md = markdown(results, args.horizon)
    if results["skipped"]:
        md += "\nSkipped: " + ", ".join(results["skipped"]) + ".\n"
    md += f"\nTotal wall time {results['wall_s']:.0f} s.\n"
    Path(args.md).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
