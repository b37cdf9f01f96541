"""Baseline: train with videogen.train.train at the demo settings (64 px, 1200 steps, batch 8, ngf/ndf 32, K=2).
Usage: base_train.py CLIP OUT_DIR [STEPS] [key=value TrainSettings overrides...]"""
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from prep import dataset

    from videogen.train import TrainSettings, train

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    clip, out = sys.argv[1], Path(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    over = {}
    for item in sys.argv[4:]:
        k, v = item.split("=", 1)
        over[k] = type(getattr(TrainSettings(), k))(v) if not isinstance(getattr(TrainSettings(), k), bool) else v == "true"
    s = TrainSettings(max_steps=steps, batch_size=8, ngf=32, ndf=32, context_frames=2, log_every=200,
                      checkpoint_every=100000, **over)
    t0 = time.time()
    info = train(dataset(clip), out, s)
    print("TRAIN_S", round(time.time() - t0, 1), "IMG_S", info["train_images_per_s"])
