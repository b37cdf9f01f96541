"""Synthetic videos with exactly known local dynamics, and the "percent of changing pixels right" score.

- life: Conway's Game of Life on a 16x16 torus, each cell a 4x4 px block (black/white), from a random soup;
  long sequences are built from several soups (re-seeded every 40 generations so the board never dies out).
- sprites: three coloured 8x8 squares moving at constant velocity with exact bounces off the borders.

make(kind, out_dir) writes a dataset dir (frames.npy + dataset.json, train = first 90%, val = rest) like
videogen.dataset.prepare. score(model, kind) rolls the model out from fresh sequences of the same rule (not in the
training video) and reports, for 1 and 20 fed-back steps, the share of pixels that change between the true frames
t-1 and t that the model gets right (per-pixel colour within 64/255 of the truth on every channel).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 64
CELL = 4
GRID = SIZE // CELL


def life_step(b: np.ndarray) -> np.ndarray:
    n = sum(np.roll(np.roll(b, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    return ((n == 3) | ((b == 1) & (n == 2))).astype(np.uint8)


def life_frames(n: int, seed: int, reseed: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    b = None
    for t in range(n):
        if t % reseed == 0:
            b = (rng.random((GRID, GRID)) < 0.35).astype(np.uint8)
        else:
            b = life_step(b)
        img = np.kron(b, np.ones((CELL, CELL), np.uint8)) * 255
        out.append(np.repeat(img[..., None], 3, -1))
    return np.stack(out)


def sprite_frames(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colors = np.array([[255, 40, 40], [40, 200, 40], [60, 60, 255]], np.uint8)
    size = 8
    pos = rng.integers(0, SIZE - size, (3, 2)).astype(int)
    vel = rng.choice([-3, -2, 2, 3], (3, 2))
    out = []
    for _ in range(n):
        img = np.full((SIZE, SIZE, 3), 30, np.uint8)
        for c, (y, x) in zip(colors, pos):
            img[y:y + size, x:x + size] = c
        out.append(img)
        pos = pos + vel
        for i in range(3):
            for a in range(2):
                if pos[i, a] < 0:
                    pos[i, a], vel[i, a] = -pos[i, a], -vel[i, a]
                elif pos[i, a] > SIZE - size:
                    pos[i, a], vel[i, a] = 2 * (SIZE - size) - pos[i, a], -vel[i, a]
    return np.stack(out)


def frames_of(kind: str, n: int, seed: int) -> np.ndarray:
    if kind == "life":
        # segments of 40 generations: a reseed is not predictable, so training pairs across one are a little noise
        return life_frames(n, seed)
    return sprite_frames(n, seed)


def make(kind: str, out_dir: Path, n: int = 400, seed: int = 0) -> Path:
    out_dir = Path(out_dir)
    if (out_dir / "dataset.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    f = frames_of(kind, n, seed)
    np.save(out_dir / "frames.npy", f)
    split = int(0.9 * (n - 1))
    (out_dir / "dataset.json").write_text(json.dumps({"image_size": SIZE, "fps": 25.0, "train": [0, split],
                                                      "val": [split + 1, n - 1], "source": f"synthetic:{kind}"}))
    return out_dir


def score(model, kind: str, k: int = 2, starts: int = 16, horizon: int = 20, seed: int = 123,
          training: bool = False) -> dict:
    """Share of changing pixels right after 1 and `horizon` fed-back steps, from fresh sequences of the same rule."""
    import tensorflow as tf
    right = {1: [0, 0], horizon: [0, 0]}
    for s in range(starts):
        if kind == "life":
            rng = np.random.default_rng(seed + s)
            b = (rng.random((GRID, GRID)) < 0.35).astype(np.uint8)
            seq = []
            for _ in range(5 + k + horizon):  # a few generations in so the soup has Life structure
                seq.append(np.repeat((np.kron(b, np.ones((CELL, CELL), np.uint8)) * 255)[..., None], 3, -1))
                b = life_step(b)
            seq = np.stack(seq[5:])
        else:
            seq = sprite_frames(k + horizon, seed + s)
        ctx = np.concatenate(list(seq[:k]), -1)[None].astype(np.float32) / 127.5 - 1
        for t in range(1, horizon + 1):
            y = np.asarray(model(tf.constant(ctx), training=training), np.float32)
            frame = np.clip(np.round((y[0] + 1) * 127.5), 0, 255)
            if t in right:
                true, prev = seq[k + t - 1].astype(np.float32), seq[k + t - 2].astype(np.float32)
                changing = np.any(true != prev, -1)
                ok = np.all(np.abs(frame - true) <= 64, -1)
                right[t][0] += int((ok & changing).sum())
                right[t][1] += int(changing.sum())
            ctx = np.concatenate([ctx[..., 3:], frame[None] / 127.5 - 1], -1).astype(np.float32)
    return {f"right_{t}": round(a / max(b, 1), 3) for t, (a, b) in right.items()}


if __name__ == "__main__":
    import sys
    for kind in ("life", "sprites"):
        d = make(kind, Path(sys.argv[1] if len(sys.argv) > 1 else "work/long/data") / f"synth_{kind}")
        print(kind, np.load(d / "frames.npy").shape)
