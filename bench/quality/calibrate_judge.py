"""Calibrate and check the video judge (videogen.video_quality) on real footage and on made-up failures.

For each clip (prepared at 64 px) and each fold, the clip is cut in time into training frames, held-out frames (the
judge's reference) and a test segment that neither saw (``tests/judge_cases.py``: 60% / 10% + 10% / 20%, forwards
and backwards): the test segment is scored as if it were a generated video ("real" rows: every ratio should sit near
1 and pass), and so is the segment played to and fro over three windows. Then made-up videos, each built to fail one
measure, are scored against the same reference: frozen, noise (sigma 12), shuffled frames, a quilt of training
patches, a replay of training frames, a fade to the clip's mean frame, and on the synthetic ``balls`` clip (discs
bouncing over a still background) the same video whose discs vanish. Each row shows every measure's worst window.

    .venv/bin/python bench/quality/calibrate_judge.py                 # the three development clips and balls
    .venv/bin/python bench/quality/calibrate_judge.py --json out.json # rows as JSON too
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.quality.clips import CLIPS, MEASURES, prepared  # noqa: E402


def clip_frames(name: str) -> np.ndarray:
    """The clip prepared by the prepare stage at 64 px (uint8 (T, S, S, 3))."""
    with tempfile.TemporaryDirectory() as tmp:
        return np.load(prepared(name, Path(tmp)) / "frames.npy")


def score(video: np.ndarray, ref, window: int) -> dict:
    """The judge's worst window of each measure (the one farthest from 1; for copying the highest) and its failures."""
    from videogen import video_quality as vq

    result = vq.judge(video, window=window, ref=ref)

    def worst(values):
        valid = [v for v in values if v is not None]
        return max(valid, key=lambda v: abs(np.log(max(v, 1e-6)))) if valid else None

    row = {m: (max(result[m]) if m == "copying" else worst(result[m])) for m in MEASURES}
    row["failed"] = result["verdict"]["failed"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=[*CLIPS, "balls"], choices=[*CLIPS, "balls"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from tests.judge_cases import balls_clip, fakes, folds, vanish_video
    from videogen import video_quality as vq

    rows = []
    for name in args.clips:
        frames = balls_clip() if name == "balls" else clip_frames(name)
        for fold, train, held, test in folds(frames):
            ref = vq.reference(train, held, np.concatenate([train, held]), window=len(test))
            rows.append({"clip": name, "fold": fold, "video": "real", **score(test, ref, len(test))})
            made_up = fakes(train, test, frames)
            if name == "balls":
                made_up["vanish"] = vanish_video(len(frames), len(test))
            for kind, video in made_up.items():
                rows.append({"clip": name, "fold": fold, "video": kind, **score(video, ref, len(test))})
    print("| clip | fold | video | " + " | ".join(MEASURES) + " | failed |")
    print("|" + " --- |" * (len(MEASURES) + 4))
    for r in rows:
        cells = [f"{r[m]:.2f}" if r[m] is not None else "-" for m in MEASURES]
        print(f"| {r['clip']} | {r['fold']} | {r['video']} | " + " | ".join(cells) + f" | {', '.join(r['failed'])} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
