"""Fast long-video scorer for screening (numpy + cv2). Not the production scorer.

Metrics of a generated video (T, S, S, 3) uint8 against a prepared dataset (frames.npy + dataset.json):
- motion: mean Farneback flow magnitude per 100-frame window / the same over the real clip (all consecutive pairs);
- realism: mean distance of random 7x7 patches of generated frames to their nearest patch in a bank of training-frame
  patches, divided by the same for the held-out (val) frames; reported per window (last window is the criterion);
- drift: realism of the last window / realism of frames 100-200;
- sharpness: mean variance of the Laplacian (grayscale) of the last window / mean over the real frames;
- replay: share of generated frames within 30 dB PSNR of some real frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

PATCH = 7
WINDOW = 100


def _gray(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def flow_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Mean Farneback flow magnitude for each consecutive pair (len T-1)."""
    g = _gray(frames)
    out = np.empty(len(g) - 1, np.float64)
    for i in range(len(g) - 1):
        flow = cv2.calcOpticalFlowFarneback(g[i], g[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out[i] = float(np.mean(np.sqrt((flow ** 2).sum(-1))))
    return out


def laplacian_var(frames: np.ndarray) -> np.ndarray:
    return np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in _gray(frames)])


def random_patches(frames: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    t, s = frames.shape[0], frames.shape[1]
    ti = rng.integers(0, t, n)
    yi = rng.integers(0, s - PATCH + 1, n)
    xi = rng.integers(0, s - PATCH + 1, n)
    dy, dx = np.meshgrid(np.arange(PATCH), np.arange(PATCH), indexing="ij")
    p = frames[ti[:, None, None], yi[:, None, None] + dy, xi[:, None, None] + dx]  # (n,7,7,3)
    return p.reshape(n, -1).astype(np.float32) / 255.0


def nn_distance(queries: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray, chunk: int = 2048) -> np.ndarray:
    out = np.empty(len(queries), np.float32)
    for i in range(0, len(queries), chunk):
        q = queries[i:i + chunk]
        d2 = (q ** 2).sum(1)[:, None] - 2.0 * q @ bank.T + bank_sq[None]
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


class Reference:
    """Everything about the real clip the scorer needs, computed once."""

    def __init__(self, dataset_dir: Path, bank_size: int = 30000, seed: int = 0):
        self.frames = np.load(Path(dataset_dir) / "frames.npy")
        info = json.loads((Path(dataset_dir) / "dataset.json").read_text())
        first, end = info["train"]
        self.train = self.frames[first:end + 1]
        v0, v1 = info.get("val") or [end, len(self.frames) - 1]
        self.val = self.frames[v0 + 1:v1 + 1] if v1 > v0 else self.frames[-10:]
        # val pairs: (inputs of pair j = frames <= j, target j+1); the held-out frames are the targets
        self.val_pairs = (v0, v1)
        self.rng = np.random.default_rng(seed)
        self.bank = random_patches(self.train, bank_size, self.rng)
        self.bank_sq = (self.bank ** 2).sum(1)
        self.val_real = float(nn_distance(random_patches(self.val, 4000, self.rng), self.bank, self.bank_sq).mean())
        self.motion = float(flow_magnitudes(self.frames).mean())
        self.sharp = float(laplacian_var(self.frames).mean())
        self.flat = self.frames.reshape(len(self.frames), -1).astype(np.float32)
        self.flat_sq = (self.flat ** 2).sum(1)

    def realism(self, frames: np.ndarray, n: int = 3000) -> float:
        q = random_patches(frames, n, self.rng)
        return float(nn_distance(q, self.bank, self.bank_sq).mean()) / self.val_real

    def replay_share(self, frames: np.ndarray, db: float = 30.0) -> float:
        g = frames.reshape(len(frames), -1).astype(np.float32)
        hits = 0
        for i in range(0, len(g), 256):
            q = g[i:i + 256]
            mse = ((q ** 2).sum(1)[:, None] - 2 * q @ self.flat.T + self.flat_sq[None]).min(1) / g.shape[1]
            psnr = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-6))
            hits += int((psnr >= db).sum())
        return hits / len(g)


def score_video(video: np.ndarray, ref: Reference) -> dict:
    """video (T, S, S, 3) uint8 (one generated video, start frames NOT included)."""
    t = len(video)
    flows = flow_magnitudes(video)
    windows = [(a, min(a + WINDOW, t)) for a in range(0, t, WINDOW) if min(a + WINDOW, t) - a >= WINDOW // 2]
    motion = [float(flows[a:max(a + 1, b - 1)].mean()) / ref.motion for a, b in windows]
    a, b = windows[-1]
    last = video[a:b]
    real_last = ref.realism(last)
    mid = video[100:200] if t >= 200 else video[: max(1, t // 2)]
    real_mid = ref.realism(mid)
    sharp = float(laplacian_var(last).mean()) / ref.sharp
    replay = ref.replay_share(video[:: max(1, t // 500)])
    sat = float(np.mean((last == 0) | (last == 255)))
    sat_real = float(np.mean((ref.frames == 0) | (ref.frames == 255)))
    real_windows = [round(ref.realism(video[a:b], 1000), 2) for a, b in windows[::max(1, len(windows) // 5)]]
    return {"frames": t, "motion_min": round(min(motion), 3), "motion_max": round(max(motion), 3),
            "motion_windows": [round(m, 3) for m in motion], "realism_last": round(real_last, 3),
            "realism_mid": round(real_mid, 3), "drift": round(real_last / max(real_mid, 1e-9), 3),
            "sharp_last": round(sharp, 3), "replay": round(replay, 3), "realism_windows": real_windows,
            "saturated_last": round(sat, 3), "saturated_real": round(sat_real, 3),
            "mean_last": round(float(last.mean()), 1), "mean_real": round(float(ref.frames.mean()), 1),
            "std_last": round(float(last.std()), 1), "std_real": round(float(ref.frames.std()), 1)}


def passes(s: dict) -> dict:
    return {"motion": 0.5 <= s["motion_min"] and s["motion_max"] <= 2.0, "realism": s["realism_last"] <= 1.5,
            "sharp": 0.6 <= s["sharp_last"] <= 2.0, "drift": s["drift"] <= 1.3, "replay": s["replay"] <= 0.5}


def real_baseline(ref: Reference) -> dict:
    """The scorer applied to the real clip itself (sanity check)."""
    return score_video(ref.frames, ref)


if __name__ == "__main__":
    import sys
    ref = Reference(Path(sys.argv[1]))
    print("real clip:", real_baseline(ref), "motion px/frame", ref.motion, "sharp", ref.sharp, "val_nn", ref.val_real)
    if len(sys.argv) > 2:
        v = np.load(sys.argv[2])
        v = v[:, 0] if v.ndim == 5 else v
        print(score_video(v, ref))
