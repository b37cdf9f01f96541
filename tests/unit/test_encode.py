"""videogen.encode: a generated directory to an H.264 mp4, checked with the real ffprobe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.media import ffprobe_stream, moving_square_frames
from videogen import encode, video
from videogen.errors import InputError


def make_generated_dir(directory, num_frames=12, num_videos=2, size=64, fps=25.0):
    """A generated dir as the generate stage writes it: frames.npy (T, V, S, S, 3) time-major and generation.json.
    Video v is the moving square shifted by 8 v frames, so the videos differ."""
    directory.mkdir(parents=True)
    source = moving_square_frames(num_frames + 8 * num_videos, size)
    frames = np.stack([source[8 * v:8 * v + num_frames] for v in range(num_videos)], axis=1)
    np.save(directory / "frames.npy", frames)
    (directory / "generation.json").write_text(json.dumps({"frames": num_frames, "num_videos": num_videos,
                                                           "fps": fps, "image_size": size}))
    return frames


def test_encode_writes_h264_yuv420p_mp4_with_exactly_t_frames(tmp_path):
    """encode() turns T=12 generated frames into an H.264 yuv420p 64x64 mp4 at the generation's fps with exactly 12
    frames (ffprobe -count_frames), moov first (+faststart), and returns the contract's fields."""
    make_generated_dir(tmp_path / "gen")
    out = tmp_path / "videos" / "gen.mp4"
    result = encode.encode(tmp_path / "gen", out)
    stream = ffprobe_stream(out)
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (64, 64, 12)
    assert stream["avg_frame_rate"] == "25/1"
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert result == {"frames": 12, "fps": 25.0, "width": 64, "height": 64, "path": str(out), "bytes": len(data)}
    assert [p.name for p in out.parent.iterdir()] == ["gen.mp4"]


def test_encode_picks_the_requested_video_and_fps(tmp_path):
    """video_index selects the rollout (decoded content matches that one, not the other) and fps overrides
    generation.json's."""
    frames = make_generated_dir(tmp_path / "gen")
    out = tmp_path / "one.mp4"
    result = encode.encode(tmp_path / "gen", out, fps=10, video_index=1)
    assert result["fps"] == 10.0 and ffprobe_stream(out)["avg_frame_rate"] == "10/1"
    decoded = np.stack(list(video.FrameDecoder(out, 64))).astype(np.int16)
    assert decoded.shape[0] == 12
    assert np.abs(decoded - frames[:, 1]).mean() < np.abs(decoded - frames[:, 0]).mean() / 3


def test_encode_refuses_what_is_not_a_generated_dir(tmp_path):
    """A missing dir, a dir without generation.json, a wrong video index and a zero fps are one-line InputErrors, and
    no mp4 appears."""
    with pytest.raises(InputError, match="does not exist"):
        encode.encode(tmp_path / "missing", tmp_path / "x.mp4")
    (tmp_path / "half").mkdir()
    np.save(tmp_path / "half" / "frames.npy", np.zeros((2, 1, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="not a generated directory"):
        encode.encode(tmp_path / "half", tmp_path / "x.mp4")
    make_generated_dir(tmp_path / "gen", num_frames=3, num_videos=1)
    with pytest.raises(InputError, match="out of range") as caught:
        encode.encode(tmp_path / "gen", tmp_path / "x.mp4", video_index=1)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="frame rate"):
        encode.encode(tmp_path / "gen", tmp_path / "x.mp4", fps=0)
    assert not (tmp_path / "x.mp4").exists()


def test_encode_refuses_frames_of_the_wrong_layout(tmp_path):
    """frames.npy must be uint8 (T, V, S, S, 3): a dataset-style (N, S, S, 3) array is refused."""
    (tmp_path / "gen").mkdir()
    np.save(tmp_path / "gen" / "frames.npy", np.zeros((4, 64, 64, 3), np.uint8))
    (tmp_path / "gen" / "generation.json").write_text(json.dumps({"fps": 25}))
    with pytest.raises(InputError, match=r"expected uint8 \(T, V, S, S, 3\)"):
        encode.encode(tmp_path / "gen", tmp_path / "x.mp4")
