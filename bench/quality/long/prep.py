"""Prepare the three real clips at 64 px (cached) into work/long/data/<clip>."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
CLIPS = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}


def dataset(clip: str, size: int = 64) -> Path:
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, prepare

    out = REPO / "work" / "long" / "data" / f"{clip}_{size}"
    if not (out / "dataset.json").exists():
        prepare(real_clip(CLIPS[clip]), out, PrepareSettings(image_size=size))
    return out


if __name__ == "__main__":
    import json

    import numpy as np
    for c in CLIPS:
        d = dataset(c)
        info = json.loads((d / "dataset.json").read_text())
        print(c, np.load(d / "frames.npy", mmap_mode="r").shape, {k: info[k] for k in ("train", "val", "fps") if k in info})
