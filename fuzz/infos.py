"""What the info-file readers share: a scratch directory with valid files around the fuzzed one, and the report's
reading of dataset.json, model.json and generation.json (its run facts)."""

from __future__ import annotations

import numpy as np

from fuzz import driver
from videogen import artifacts, report

# The smallest metrics the report renders; the info files are what is fuzzed.
METRICS = {"verdict": "", "dataset": {}, "settings": {"seed": 0}, "one_step": {}, "rollout": [], "health": None}


def info_dir(name: str, frames_shape: tuple[int, ...] | None = None, files: dict[str, bytes] | None = None):
    """A scratch directory with a valid ``frames.npy`` of ``frames_shape`` (if given) and ``files``."""
    directory = driver.scratch_dir(name)
    if frames_shape is not None:
        np.save(directory / artifacts.FRAMES_FILE, np.zeros(frames_shape, np.uint8))
    for file_name, content in (files or {}).items():
        (directory / file_name).write_bytes(content)
    return directory


def render(dataset_info: dict, model_info: dict, generation_info: dict | None) -> str:
    """The report's summary of these infos (the HTML page shows the same facts)."""
    return report.render_markdown(METRICS, dataset_info, model_info, generation_info)
