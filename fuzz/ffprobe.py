"""ffprobe's JSON output (``-show_streams -show_format -of json``) as :func:`videogen.video.parse_probe` reads it:
the video's size, rotation, frame rate, duration and frame count, or one line naming the video. ffprobe itself is
not run: the input is the text it would print."""

from __future__ import annotations

from pathlib import Path

from fuzz import driver
from videogen import video

VIDEO = Path("clip.mp4")


def test_one_input(data: bytes) -> None:
    with driver.contract(VIDEO.name):
        info = video.parse_probe(VIDEO, data)
        assert info.width > 0 and info.height > 0 and info.width * info.height <= video.DEFAULT_MAX_PIXELS, info
        assert info.fps >= 0 and info.duration >= 0 and info.num_frames >= 0, info


if __name__ == "__main__":
    driver.main(test_one_input)
