"""Hostile and broken input to the prepare stage (issue 6): every case ends within seconds, with one clear line
(InputError) or, for a file cut in its data, with the frames that decoded and a warning that says so; a failing
prepare leaves nothing that looks like a finished dataset. All files are made here with the real ffmpeg."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.media import moving_square_frames, write_video
from videogen import dataset, video
from videogen.errors import InputError

SETTINGS = dataset.PrepareSettings(image_size=64, timeout_s=20)
# Every refusal must come quickly; generous for a loaded 2-core machine.
MAX_SECONDS = 10.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60, stdin=subprocess.DEVNULL)


def assert_refused(source, tmp_path, match: str, settings: dataset.PrepareSettings = SETTINGS) -> str:
    """prepare() raises a one-line InputError matching `match` within MAX_SECONDS and leaves no output behind (no
    dataset dir, no temporary dir beside it). Returns the message."""
    out = tmp_path / "out" / "dataset"
    before = set(tmp_path.rglob("*"))
    started = time.monotonic()
    with pytest.raises(InputError, match=match) as caught:
        dataset.prepare(source, out, settings)
    assert time.monotonic() - started < MAX_SECONDS
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert not out.exists()
    leftovers = set(tmp_path.rglob("*")) - before - {tmp_path / "out"}
    assert leftovers == set(), f"prepare left {leftovers}"
    return message


def noisy_square_frames(num_frames=40, size=64):
    """The moving square with fixed per-frame noise, so that every frame takes many bytes in a lossless file and a
    cut at a share of the file size lands between frames in proportion."""
    noise = np.random.default_rng(1).integers(0, 40, (num_frames, size, size, 3), dtype=np.uint8)
    return moving_square_frames(num_frames, size) // 2 + noise


def faststart_video(tmp_path, frames):
    return write_video(tmp_path / "fast.mp4", frames, extra=["-movflags", "+faststart"])


def mdat_offset(data: bytes) -> int:
    """Offset of the top-level mdat box of an mp4."""
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"mdat":
            return offset
        offset += size
    raise AssertionError("no mdat box")


def test_empty_file_is_refused(tmp_path):
    """A 0-byte .mp4 is refused before ffmpeg runs."""
    empty = tmp_path / "empty.mp4"
    empty.touch()
    assert_refused(empty, tmp_path, "is empty")


def test_random_bytes_named_mp4_are_refused(tmp_path):
    """64 KiB of random bytes named .mp4: ffprobe finds no format it may open."""
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(65536))
    assert_refused(noise, tmp_path, "not a video file ffmpeg can read|not a video container")


def test_truncated_mp4_without_moov_is_refused(tmp_path):
    """An mp4 whose moov atom sits at the end (no faststart, as recorders write) cut before it: 'no moov atom' with
    what to do."""
    whole = write_video(tmp_path / "whole.mp4", moving_square_frames(40, 64))
    data = whole.read_bytes()
    assert data.index(b"mdat") < data.index(b"moov")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:data.index(b"moov") - 4])  # everything up to the moov box
    message = assert_refused(cut, tmp_path, "no moov atom")
    assert "download it again" in message


def test_mp4_cut_in_its_data_uses_decoded_frames_and_says_so(tmp_path, caplog):
    """A faststart mp4 cut at 60% of its size: ffmpeg decodes the first frames and exits 0. Policy: use what decoded
    (at least 3 frames), never silently: a WARNING is logged and dataset.json has partial_decode and a note."""
    source = noisy_square_frames()
    data = faststart_video(tmp_path, source).read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 6 // 10])
    with caplog.at_level(logging.WARNING, logger="videogen"):
        info = dataset.prepare(cut, tmp_path / "ds", SETTINGS)
    assert 3 <= info["num_frames"] < 40
    assert info["partial_decode"] is True
    assert info["notes"] and "cut or damaged" in info["notes"][0] and "of 40" in info["notes"][0]
    assert any(r.levelno == logging.WARNING and "cut or damaged" in r.getMessage() for r in caplog.records)
    frames, _ = dataset.load_dataset(tmp_path / "ds")
    expected = source[:info["num_frames"]]
    assert np.abs(frames.astype(np.int16) - expected).max() <= 3  # the frames kept are the real first frames


def test_mp4_cut_right_after_its_header_is_refused(tmp_path):
    """A faststart mp4 cut a few bytes into its data decodes to fewer than 3 frames: refused after decoding, and the
    half-built dataset is removed."""
    data = faststart_video(tmp_path, moving_square_frames(40, 64)).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:mdat_offset(data) + 64])
    assert_refused(cut, tmp_path, "after 0 frame.*damaged or cut")


def test_audio_only_file_is_refused(tmp_path):
    """An AAC-only .mp4 has no video stream: refused with what it does contain."""
    audio = tmp_path / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    assert_refused(audio, tmp_path, r"no video stream \(only audio streams\)")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_with_fewer_than_three_frames_is_refused(tmp_path, suffix):
    """Two frames cannot make a train and a val pair. mp4 states its count in the header (refused by the probe);
    Matroska does not (refused after decoding)."""
    short = write_video(tmp_path / f"short{suffix}", moving_square_frames(2, 64))
    assert_refused(short, tmp_path, "only 2 frame")


def test_8k_video_beyond_default_pixel_limit_is_refused(tmp_path):
    """A 3-frame 7680x4320 video is over the default limit (4K UHD): refused by the probe with the size and the
    limit, without decoding a frame."""
    big = tmp_path / "8k.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=7680x4320:r=25", "-frames:v", "3", "-c:v", "libx264", "-preset",
           "ultrafast", str(big))
    message = assert_refused(big, tmp_path, "7680x4320")
    assert "over the limit of 8,294,400 pixels" in message


def test_pixel_limit_is_configurable(synthetic_video, tmp_path):
    """With max_pixels lowered to 32x32, the 64x64 synthetic video is refused; the limit is a setting."""
    settings = dataset.PrepareSettings(image_size=64, max_pixels=32 * 32)
    assert_refused(synthetic_video, tmp_path, "over the limit of 1,024 pixels", settings)


def test_variable_frame_rate_video_decodes_every_real_frame_once(tmp_path):
    """A VFR mp4 (every 4th frame held 3x longer): a default ffmpeg decode duplicates frames to a constant rate,
    prepare keeps each of the 40 real frames exactly once, in order."""
    source = moving_square_frames(40, 64)
    vfr = write_video(tmp_path / "vfr.mp4", source,
                      extra=["-vf", "setpts='(N+2*floor(N/4))/(25*TB)'", *next((f"-{k}", v) for k, v in video.passthrough_option().items())])
    naive = subprocess.run(["ffmpeg", "-v", "error", "-i", str(vfr), "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "pipe:1"], capture_output=True, timeout=30, check=True).stdout
    assert len(naive) // (64 * 64 * 3) > 40  # the file is really VFR
    info = dataset.prepare(vfr, tmp_path / "ds", SETTINGS)
    frames, _ = dataset.load_dataset(tmp_path / "ds")
    assert info["num_frames"] == 40 and not info["partial_decode"]
    assert np.abs(frames.astype(np.int16) - source).max() <= 3


def test_rotation_metadata_gives_upright_frames(tmp_path):
    """A 96x64 stored frame with four coloured quadrants and a display matrix of 90 degrees (as phones write): the
    frames come out as the mp4 spec's matrix displays them (stored right edge on top, i.e. np.rot90), center-cropped;
    dataset.json reports the display size 64x96 and the rotation."""
    stored = np.zeros((64, 96, 3), np.uint8)
    stored[:32, :48], stored[:32, 48:] = (255, 0, 0), (0, 255, 0)
    stored[32:, :48], stored[32:, 48:] = (0, 0, 255), (255, 255, 255)
    plain = write_video(tmp_path / "plain.mp4", np.repeat(stored[None], 4, axis=0))
    rotated = tmp_path / "phone.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90", str(rotated))
    probe = video.probe_video(rotated)
    assert (probe.width, probe.height, abs(probe.rotation)) == (64, 96, 90)

    # Display per ISO/IEC 14496-12: the matrix [0 -1; 1 0] maps stored (x, y) to (y, W - x): counter-clockwise 90.
    matrix = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(rotated)],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    assert "-65536" in matrix.split("displaymatrix")[1].split("\\n")[1]
    upright = np.rot90(stored, k=1)[16:80]

    info = dataset.prepare(rotated, tmp_path / "ds", SETTINGS)
    frames, _ = dataset.load_dataset(tmp_path / "ds")
    assert (info["source_width"], info["source_height"], abs(info["rotation"])) == (64, 96, 90)
    assert np.abs(frames[0].astype(np.int16) - upright).mean() < 10
    assert np.abs(frames[0].astype(np.int16) - stored[:, 16:80]).mean() > 60  # not the stored orientation


def test_missing_path_is_refused(tmp_path):
    """A path that does not exist says so and suggests --video-url."""
    assert_refused(tmp_path / "nope.mp4", tmp_path, "does not exist")


def test_directory_instead_of_video_is_refused(tmp_path):
    """A directory passed as the video is refused before ffmpeg runs."""
    (tmp_path / "dir.mp4").mkdir()
    assert_refused(tmp_path / "dir.mp4", tmp_path, "not a regular file")


@pytest.mark.parametrize("target", ["/etc/passwd", "local video"])
def test_hls_playlist_named_mp4_is_refused_not_followed(tmp_path, target, synthetic_video):
    """An HLS playlist saved as .mp4 listing /etc/passwd or another local video: ffmpeg would open it as HLS (it
    chooses by content) and read the listed file; the demuxer whitelist refuses it."""
    listed = "/etc/passwd" if target == "/etc/passwd" else str(synthetic_video)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{listed}\n#EXT-X-ENDLIST\n")
    message = assert_refused(playlist, tmp_path, "'hls' file")
    assert "HLS playlist" in message
    # The decoder is whitelisted too, not only the probe: a direct decode is refused the same way.
    with pytest.raises(InputError, match="'hls' file"):
        list(video.FrameDecoder(playlist, 64))


def test_ffconcat_script_named_mp4_is_refused(tmp_path, synthetic_video):
    """An ffconcat script (another demuxer that opens local files) named .mp4 is refused by the whitelist."""
    script = tmp_path / "concat.mp4"
    script.write_text(f"ffconcat version 1.0\nfile '{synthetic_video}'\n")
    assert_refused(script, tmp_path, "not a video container|not a video file")


def test_failed_prepare_keeps_previous_dataset_and_leaves_no_partial_output(synthetic_video, tmp_path):
    """Re-preparing into an existing dataset from a broken file fails without touching the finished dataset and
    without a temporary directory beside it."""
    out = tmp_path / "ds"
    dataset.prepare(synthetic_video, out, SETTINGS)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(4096))
    with pytest.raises(InputError):
        dataset.prepare(broken, out, SETTINGS)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "ds", "synthetic.mp4"]


def test_decode_failure_reports_ffmpegs_last_line(tmp_path):
    """When ffmpeg exits non-zero mid-decode (a frame over the decoder's pixel limit), FrameDecoder raises a
    one-line InputError naming the problem rather than yielding a short, silent result."""
    big = tmp_path / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=320x240:r=25", "-frames:v", "3", "-c:v", "libx264", "-preset",
           "ultrafast", str(big))
    with pytest.raises(InputError, match="320x240") as caught:
        list(video.FrameDecoder(big, 64, max_pixels=100 * 100))
    assert "\n" not in str(caught.value)


def _hostile_file(kind: str, tmp_path) -> str:
    """Make one hostile input of `kind` (the same recipes as the library tests above); return its path or URL."""
    if kind == "empty":
        (tmp_path / "empty.mp4").touch()
        return str(tmp_path / "empty.mp4")
    if kind == "random bytes":
        (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(65536))
        return str(tmp_path / "noise.mp4")
    if kind == "no moov":
        data = write_video(tmp_path / "whole.mp4", moving_square_frames(20, 64)).read_bytes()
        (tmp_path / "cut.mp4").write_bytes(data[:data.index(b"moov") - 4])
        return str(tmp_path / "cut.mp4")
    if kind == "audio only":
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(tmp_path / "audio.mp4"))
        return str(tmp_path / "audio.mp4")
    if kind == "two frames":
        return str(write_video(tmp_path / "short.mkv", moving_square_frames(2, 64)))
    if kind == "hls to /etc/passwd":
        (tmp_path / "playlist.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n/etc/passwd\n"
                                               "#EXT-X-ENDLIST\n")
        return str(tmp_path / "playlist.mp4")
    if kind == "missing path":
        return str(tmp_path / "missing.mp4")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "random bytes", "no moov", "audio only", "two frames",
                                  "hls to /etc/passwd", "missing path"])
def test_cli_refuses_hostile_input_with_one_error_line_and_status_2(kind, tmp_path):
    """`videogen prepare` in its own process on each hostile input: exit status 2, exactly one `videogen: error:`
    line as the last line of stderr, no traceback, no dataset dir."""
    source = _hostile_file(kind, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "videogen", "prepare", "--video", source, "--output",
                           str(tmp_path / "ds"), "--image-size", "64"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videogen: error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "root:" not in errors[0]
    assert not (tmp_path / "ds").exists()
