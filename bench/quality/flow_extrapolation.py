"""How far generic motion extrapolation gets on the development clips: a measurement, not a generator.

From every held-out start of each clip (prepared at 64 px, the demo's size) whose continuation stays in one shot
(``videogen.measures.one_shot``), the last frame is warped along the optical flow between the last two frames
(Farneback with the judge's parameters, ``videogen.measures.FARNEBACK``; bilinear, the border repeated), then the
same again on its own output, and the result is scored by PSNR against the real frame 1, 5 and 10 steps ahead,
beside copying the last frame. ``--scale`` scales the flow (0.5: half the last motion).

    .venv/bin/python bench/quality/flow_extrapolation.py --work work/flow
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.quality.clips import CLIPS, prepared  # noqa: E402

HORIZONS = (1, 5, 10)


def extrapolate(previous: np.ndarray, last: np.ndarray, steps: int, scale: float) -> np.ndarray:
    """``steps`` frames on from ``last``, each the frame before warped along the flow of the step before it."""
    from videogen.measures import FARNEBACK, gray

    size = last.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(steps):
        back = cv2.calcOpticalFlowFarneback(gray(last), gray(previous), None, **FARNEBACK) * scale
        previous, last = last, cv2.remap(last, xs + back[..., 0], ys + back[..., 1], cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
    return last


def clip_row(frames: np.ndarray, info: dict, scale: float) -> dict:
    from videogen.measures import one_shot, psnr

    v0, v1 = info["val"]
    starts = np.arange(max(v0, 1), v1)
    scored = one_shot(frames[:v1 + 1], starts, 1, HORIZONS)
    row = {}
    for k in HORIZONS:
        ok = [s for s, good in zip(starts, scored[k]) if good and s + k <= v1]
        copy = [psnr(frames[s], frames[s + k]) for s in ok]
        warp = [psnr(extrapolate(frames[s - 1], frames[s], k, scale), frames[s + k]) for s in ok]
        row[k] = {"starts": len(ok), "copy": round(float(np.mean(copy)), 2) if ok else None,
                  "extrapolated": round(float(np.mean(warp)), 2) if ok else None}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=Path("work/flow"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    for clip in args.clips:
        data = prepared(clip, args.work)
        row = clip_row(np.load(data / "frames.npy"), json.loads((data / "dataset.json").read_text()), args.scale)
        print(clip, json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
