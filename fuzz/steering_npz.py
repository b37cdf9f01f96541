"""A model's ``steering.npz`` (a zip of .npy arrays) as :func:`videogen.steering.load_targets` reads it for
generate, and the patch distance generate measures with it: the clip's motion, change, sharpness and patch distance, the patch bank and the anchor frames."""

from __future__ import annotations

import numpy as np

from fuzz import driver
from videogen import steering

_DIR = None


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or driver.scratch_dir("steering-npz")
    (_DIR / steering.STEERING_FILE).write_bytes(data)
    with driver.contract(steering.STEERING_FILE, directory=_DIR):
        targets = steering.load_targets(_DIR)
        queries = np.zeros((2, 3 * steering.DISTANCE_PATCH ** 2), np.float32)  # what generate measures a frame with
        steering.nearest_distances(queries, targets.distance_bank)
        targets.anchors.shape[1] // 2  # the looks pool the anchors by their side


if __name__ == "__main__":
    driver.main(test_one_input)
