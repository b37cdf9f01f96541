"""Generated ``frames.npy`` (its .npy header and data, ``(T, V, S, S, 3)``) as :func:`videogen.artifacts.open_generated`
reads it for encode and evaluate, beside a valid ``generation.json`` of 4 frames x 2 videos; then every frame."""

from __future__ import annotations

from fuzz import driver
from fuzz.frames import FRAMES, frames_dir, put, touch_all
from videogen import artifacts

INFO = {"frames": 4, "num_videos": 2, "image_size": 8, "fps": 25.0, "start_frames": [3, 4]}
_DIR = None


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or frames_dir("generated-frames", artifacts.GENERATION_FILE, INFO)
    put(_DIR, FRAMES, data)
    with driver.contract(FRAMES, str(_DIR), directory=_DIR):
        frames, _ = artifacts.open_generated(_DIR)
        touch_all(frames)


if __name__ == "__main__":
    driver.main(test_one_input)
