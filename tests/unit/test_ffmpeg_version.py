"""FFmpeg 4.4 and newer: the decode command picks `-vsync` or `-fps_mode` by the version ffmpeg reports.

No other ffmpeg is run: the version line is injected (or the probe monkeypatched); the setup script is run against a
fake `ffmpeg` that only prints a version line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from videogen import video
from videogen.errors import VideogenError

ROOT = Path(__file__).resolve().parents[2]

DEBIAN_12 = "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers"
UBUNTU_22_04 = "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers"
UBUNTU_20_04 = "ffmpeg version 4.2.7-0ubuntu0.1 Copyright (c) 2000-2022 the FFmpeg developers"


@pytest.fixture
def version_line(monkeypatch):
    """Set what `ffmpeg -version` answers (first line), counting how often it is asked."""
    calls = []

    def use(line: str) -> list:
        def fake_run(cmd, **kwargs):
            calls.append(cmd)
            assert cmd == ["ffmpeg", "-version"], cmd
            return subprocess.CompletedProcess(cmd, 0, stdout=f"{line}\nbuilt with gcc 12\n", stderr="")

        monkeypatch.setattr(video.subprocess, "run", fake_run)
        video.ffmpeg_version_line.cache_clear()
        return calls

    yield use
    video.ffmpeg_version_line.cache_clear()


@pytest.mark.parametrize(("line", "expected"), [
    (DEBIAN_12, (5, 1)),
    (UBUNTU_22_04, (4, 4)),
    ("ffmpeg version n6.1 Copyright (c) 2000-2023 the FFmpeg developers", (6, 1)),
    ("ffmpeg version 7.0.2-static https://johnvansickle.com/ffmpeg/", (7, 0)),
    ("ffmpeg version 6.0-full_build-www.gyan.dev Copyright (c) 2000-2023", (6, 0)),
    ("ffmpeg version 3.4.11-0ubuntu0.1 Copyright (c) 2000-2022", (3, 4)),
    ("ffmpeg version N-112345-g0123456789 Copyright (c) 2000-2023 the FFmpeg developers", None),
    ("ffmpeg version 2023-06-11-git-09621fd7d9-full_build-www.gyan.dev", None),
    ("ffmpeg version git-2024-01-01-abcdef", None),
    ("", None),
    ("something else entirely", None),
])
def test_parse_ffmpeg_version(line, expected):
    assert video.parse_ffmpeg_version(line) == expected


@pytest.mark.parametrize(("line", "option"), [
    (UBUNTU_22_04, {"vsync": "passthrough"}),
    ("ffmpeg version 5.0.3 Copyright (c) 2000-2022 the FFmpeg developers", {"vsync": "passthrough"}),
    (DEBIAN_12, {"fps_mode": "passthrough"}),
    ("ffmpeg version n7.1 Copyright (c) 2000-2024 the FFmpeg developers", {"fps_mode": "passthrough"}),
    ("ffmpeg version N-112345-g0123456789 Copyright (c) 2000-2023 the FFmpeg developers", {"fps_mode": "passthrough"}),
    ("unparsable", {"fps_mode": "passthrough"}),
])
def test_passthrough_option_follows_the_version(line, option):
    assert video.passthrough_option(line) == option


@pytest.mark.parametrize("line", [UBUNTU_20_04, "ffmpeg version 3.4.11", "ffmpeg version n4.3.6"])
def test_ffmpeg_older_than_4_4_is_refused_with_one_line(line):
    with pytest.raises(VideogenError) as info:
        video.passthrough_option(line)
    assert isinstance(info.value, video.FFmpegVersionError)
    message = str(info.value)
    assert "\n" not in message and "4.4 or newer" in message
    major, minor = video.parse_ffmpeg_version(line)
    assert f"ffmpeg {major}.{minor} is too old" in message  # names the version found


def test_decode_command_on_ffmpeg_4_4_uses_vsync(version_line, tmp_path):
    version_line(UBUNTU_22_04)
    args = video.decode_stream(tmp_path / "in.mp4", 64).get_args()
    assert "-vsync" in args and args[args.index("-vsync") + 1] == "passthrough"
    assert "-fps_mode" not in args


def test_decode_command_on_ffmpeg_5_1_uses_fps_mode(version_line, tmp_path):
    version_line(DEBIAN_12)
    args = video.decode_stream(tmp_path / "in.mp4", 64).get_args()
    assert "-fps_mode" in args and args[args.index("-fps_mode") + 1] == "passthrough"
    assert "-vsync" not in args


def test_decode_command_on_a_git_build_uses_fps_mode(version_line, tmp_path):
    version_line("ffmpeg version N-112345-g0123456789 Copyright (c) 2000-2023 the FFmpeg developers")
    assert "-fps_mode" in video.decode_stream(tmp_path / "in.mp4", 64).get_args()


def test_too_old_ffmpeg_stops_decoding_before_ffmpeg_runs(version_line, tmp_path):
    calls = version_line(UBUNTU_20_04)
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"\0" * 64)
    decoder = video.FrameDecoder(clip, 64)
    with pytest.raises(video.FFmpegVersionError, match=r"ffmpeg 4\.2 is too old"):
        next(iter(decoder))
    assert calls == [["ffmpeg", "-version"]]  # only the version probe ran, never a decode


def test_version_is_asked_once_per_process(version_line, tmp_path):
    calls = version_line(DEBIAN_12)
    for _ in range(3):
        video.decode_stream(tmp_path / "in.mp4", 64)
    assert calls == [["ffmpeg", "-version"]]


def test_missing_ffmpeg_is_one_clear_line(monkeypatch):
    def missing(cmd, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "ffmpeg")

    monkeypatch.setattr(video.subprocess, "run", missing)
    video.ffmpeg_version_line.cache_clear()
    try:
        with pytest.raises(video.FFmpegVersionError, match="not installed"):
            video.passthrough_option()
    finally:
        video.ffmpeg_version_line.cache_clear()


def test_installed_ffmpeg_is_supported():
    """The ffmpeg on this machine (the one the rest of the suite runs) passes the check."""
    video.ffmpeg_version_line.cache_clear()
    line = video.ffmpeg_version_line()
    assert line.startswith("ffmpeg version"), line
    assert video.passthrough_option(line) in ({"vsync": "passthrough"}, {"fps_mode": "passthrough"})


@pytest.mark.parametrize(("line", "rc"), [
    (UBUNTU_20_04, 2),
    ("ffmpeg version n3.4", 2),
    (UBUNTU_22_04, 0),
    (DEBIAN_12, 0),
    ("ffmpeg version N-112345-g0123456789 Copyright (c) 2000-2023", 0),
])
def test_setup_script_refuses_ffmpeg_older_than_4_4(tmp_path, line, rc):
    """scripts/setup.sh --check-ffmpeg (the same check setup runs right after installing ffmpeg), against a fake
    ffmpeg that prints only a version line."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(f'#!/bin/sh\necho "{line}"\necho "built with gcc"\n')
    fake.chmod(0o755)
    # VENV/PYTHON point nowhere: a setup.sh that went past the check would fail here, never touch the real venv.
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
           "VENV": str(tmp_path / "no-venv"), "PYTHON": "false"}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--check-ffmpeg"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == rc, out.stderr
    if rc:
        lines = out.stderr.strip().splitlines()
        major, minor = video.parse_ffmpeg_version(line)
        assert len(lines) == 1 and "4.4 or newer" in lines[0] and f"ffmpeg {major}.{minor} is too old" in lines[0]
    else:
        assert not out.stderr.strip()
