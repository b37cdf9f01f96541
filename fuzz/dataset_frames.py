"""A dataset's ``frames.npy`` (its .npy header and data) as :func:`videogen.artifacts.open_dataset` reads it, beside a
valid ``dataset.json`` of 6 frames of 8 px; then every frame and every source video's blocks, as train and generate
use them."""

from __future__ import annotations

from fuzz import driver
from fuzz.frames import FRAMES, frames_dir, put, touch_all
from videogen import artifacts

INFO = {"fps": 25.0, "image_size": 8, "num_frames": 6, "source": "clip.mp4", "train": [0, 3], "val": [3, 5],
        "start_frame": 3}
_DIR = None


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or frames_dir("dataset-frames", artifacts.DATASET_FILE, INFO)
    put(_DIR, FRAMES, data)
    with driver.contract(FRAMES, str(_DIR), directory=_DIR):
        dataset = artifacts.open_dataset(_DIR)
        touch_all(dataset.frames)
        for view in dataset.videos:
            view.block("train"), view.block("val")


if __name__ == "__main__":
    driver.main(test_one_input)
