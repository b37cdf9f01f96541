"""What the frame readers share: a directory holding one fuzzed ``frames.npy`` beside a valid info file."""

from __future__ import annotations

import json
from pathlib import Path

from fuzz import driver
from videogen import artifacts


def frames_dir(name: str, info_file: str, info: dict) -> Path:
    """A scratch directory with ``info_file`` holding ``info`` (written once per process)."""
    directory = driver.scratch_dir(name)
    (directory / info_file).write_text(json.dumps(info))
    return directory


def put(directory: Path, file_name: str, data: bytes) -> Path:
    """``data`` as ``directory/file_name`` (replacing the last input)."""
    path = directory / file_name
    path.write_bytes(data)
    return path


def touch_all(frames) -> int:
    """Read every byte of a memory-mapped array as the stages do (frame by frame): a short file shows up here."""
    return sum(int(frames[i].sum()) for i in range(len(frames)))


FRAMES = artifacts.FRAMES_FILE
