"""Stage "encode": generated frames to a browser-playable H.264 mp4.

Reads a generated directory (docs/design.md): ``frames.npy`` uint8 ``(T, V, S, S, 3)``, time-major, and
``generation.json`` (its ``fps`` is the default frame rate). Writes one mp4 (H.264, yuv420p, ``+faststart``) for video
``video_index``: the frames are streamed into ffmpeg (:class:`videogen.video.VideoWriter`), never as image files, and
the mp4 appears under its name only when complete.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from videogen.artifacts import open_generated
from videogen.errors import InputError
from videogen.video import VideoWriter

log = logging.getLogger("videogen.encode")

# Frames handed to the writer per call: large enough to keep Python overhead negligible, small enough to stream.
_BLOCK_FRAMES = 32


def load_generated(generated_dir: Path) -> tuple[np.ndarray, dict]:
    """Open a generated directory (see :func:`videogen.artifacts.open_generated`)."""
    return open_generated(Path(generated_dir))


def encode(generated_dir: Path, output: Path, fps: float | None = None, video_index: int = 0) -> dict:
    """Encode video ``video_index`` of a generated directory to an H.264 mp4.

    Args:
        generated_dir: Output of the generate stage.
        output: mp4 file to write (its directory is created; it is replaced only on success).
        fps: Frame rate; default: ``generation.json``'s ``fps`` (the source video's).
        video_index: Which rollout to encode, ``0 <= video_index < V``.

    Returns:
        ``{"frames", "fps", "width", "height", "path", "bytes"}``.

    Raises:
        InputError: not a generated directory, no frames, a bad ``video_index`` or frame rate.
        VideogenError: ffmpeg failed writing the file.
    """
    frames, info = load_generated(generated_dir)
    num_frames, num_videos, size = frames.shape[0], frames.shape[1], frames.shape[2]
    if num_frames == 0:
        raise InputError(f"{generated_dir} holds no frames; generate at least one frame first")
    if not 0 <= video_index < num_videos:
        raise InputError(f"--video-index {video_index} is out of range: {generated_dir} holds {num_videos} video(s) "
                         f"(0..{num_videos - 1})")
    rate = fps if fps is not None else info.get("fps")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(f"no usable frame rate ({fps if fps is not None else info.get('fps')!r}); pass --fps with a "
                         f"positive number")

    output = Path(output)
    started = time.monotonic()
    with VideoWriter(output, size, size, rate) as writer:
        for first in range(0, num_frames, _BLOCK_FRAMES):
            writer.write(frames[first:first + _BLOCK_FRAMES, video_index])
    result = {"frames": writer.result["frames"], "fps": rate, "width": size, "height": size,
              "path": str(output), "bytes": writer.result["bytes"]}
    log.info("encoded %d frames of %dx%d at %g fps to %s (%d bytes, %.1f s)", num_frames, size, size, rate, output,
             result["bytes"], time.monotonic() - started)
    return result
