"""``generation.json`` as encode and evaluate read it, beside a valid generated ``frames.npy`` of 4 frames x 2 videos
of 8 px: :func:`videogen.artifacts.open_generated`, evaluate's baseline start frame,
and the report's facts."""

from __future__ import annotations

import numpy as np

from fuzz import driver, infos
from videogen import artifacts, evaluate

_DIR = None
_DATASET = artifacts.Dataset(dir=None, frames=np.zeros((6, 8, 8, 3), np.uint8), info={"start_frame": 3})


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or infos.info_dir("generation-json", frames_shape=(4, 2, 8, 8, 3))
    (_DIR / artifacts.GENERATION_FILE).write_bytes(data)
    with driver.contract(artifacts.GENERATION_FILE, str(_DIR), directory=_DIR):
        _, info = artifacts.open_generated(_DIR)

        evaluate._baseline_start(info.get("start_frames"), _DATASET, (3, 5))
        infos.render({}, {}, info)


if __name__ == "__main__":
    driver.main(test_one_input)
