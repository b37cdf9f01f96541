"""All ffmpeg and ffprobe in and out: probe a video, decode it through a pipe, encode frames to H.264.

Reads video files (untrusted input) and writes mp4 files; no temporary image files anywhere.

Untrusted media is handled defensively: every ffprobe/ffmpeg call

- opens inputs as ``file:<absolute path>`` with ``-protocol_whitelist file``, so nothing is fetched over a network and a
  path is never parsed as a URL;
- allows only real container demuxers (``-format_whitelist``, :data:`DEMUXER_WHITELIST`). ffmpeg picks the demuxer by
  content, not by file name, so an HLS playlist saved as ``.mp4`` would otherwise be opened as HLS and read whatever local
  files it lists (``/etc/passwd``, another video);
- limits the frame size (``-max_pixels`` plus an explicit check of the probed size);
- runs under a timeout: :func:`probe_video` through ``subprocess.run(timeout=...)``; decoding and encoding through a
  watchdog that kills ffmpeg when it makes no progress for ``timeout_s`` seconds.

ffmpeg-python builds the command lines (:func:`decode_stream`, :func:`encode_stream`, testable with ``.get_args()``); the
processes are started with :mod:`subprocess` directly because ffmpeg-python offers no timeout.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from videogen.errors import InputError, VideogenError

log = logging.getLogger("videogen.video")

# Real container formats only (the names ffmpeg's mov, matroska and avi demuxers answer to). Playlists (hls, concat),
# image sequences and raw/network formats are refused.
DEMUXER_WHITELIST = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi")
# Default frame-size limit: 4K UHD (3840x2160) passes, 8K (7680x4320) is refused.
DEFAULT_MAX_PIXELS = 3840 * 2160
# Seconds an ffprobe call may take, and seconds ffmpeg may go without progress while decoding or encoding.
DEFAULT_TIMEOUT_S = 60.0
# A next-frame dataset needs at least two pairs: one to train on and one to validate.
MIN_FRAMES = 3

DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"

# ffmpeg log lines carry their level with `-loglevel level+warning`: "[error] ..." / "[warning] ...".
_LEVEL_RE = re.compile(r"\[(fatal|error|warning|panic)\]\s*(.*)")
_CONTEXT_RE = re.compile(r"^\[(\w+) @ [0-9a-fx]+\]")
_NESTED_CONTEXT_RE = re.compile(r"^(\[[\w-]+ @ [0-9a-fx]+\]\s*)+")
_PIXEL_LIMIT_RE = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count (\d+)")
_READ_CHUNK_BYTES = 4 << 20
# ffprobe's frame rates: "30000/1001", "25/1" (digits bounded: a rate is a small fraction).
_RATE_RE = re.compile(r"\s*(\d{1,20})\s*(?:/\s*(\d{1,20}))?\s*")
# Durations at or above this (a year, in seconds) are not a video's: the container's field is damaged.
_MAX_DURATION_S = 365 * 24 * 3600.0


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about a video's first video stream.

    Attributes:
        width: Display width in pixels, after rotation (what decoding yields: ffmpeg autorotates).
        height: Display height in pixels, after rotation.
        fps: Average frame rate (frames / duration), also right for variable-frame-rate files.
        num_frames: Frame count: the container's exact count when it has one, else duration x fps (an estimate).
        num_frames_exact: Whether ``num_frames`` comes from the container's header.
        rotation: Display rotation in degrees as ffprobe reports it (0, 90, -90, 180, ...).
        codec: Video codec name (``h264``, ``vp9``, ...).
        format_name: Demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ``avi``).
        duration: Duration in seconds (0.0 when unknown).
        coded_width: Stored width before rotation.
        coded_height: Stored height before rotation.
    """

    width: int
    height: int
    fps: float
    num_frames: int
    rotation: int
    codec: str
    format_name: str
    duration: float
    num_frames_exact: bool = False
    coded_width: int = 0
    coded_height: int = 0


def _input_url(path: Path) -> str:
    # The "file:" prefix stops a name such as "http:x.mp4" or "concat:a|b" from being read as a protocol.
    return "file:" + str(Path(path).resolve())


def _input_options(max_pixels: int) -> dict:
    return {
        "format_whitelist": ",".join(DEMUXER_WHITELIST),
        "protocol_whitelist": "file",
        "max_pixels": int(max_pixels),
    }


def check_input_file(path: Path) -> Path:
    """Refuse a path that cannot be a video before any ffmpeg runs: missing, not a file, unreadable or empty.

    Returns:
        The path as a :class:`Path`.

    Raises:
        InputError: with one line saying what is wrong and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"video {path} does not exist; check the path (or pass --video-url to download it first)")
    if not path.is_file():
        raise InputError(f"video {path} is not a regular file; pass the path of a video file")
    if not os.access(path, os.R_OK):
        raise InputError(f"video {path} is not readable; check its permissions")
    if path.stat().st_size == 0:
        raise InputError(f"video {path} is empty (0 bytes); the download or copy probably failed, fetch it again")
    return path


def _ffmpeg_failure(path: Path, stderr: str, tool: str) -> str:
    """One line explaining why ffprobe/ffmpeg could not open ``path``, from its stderr."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "\n".join(lines)
    too_big = _PIXEL_LIMIT_RE.search(text)
    if too_big:
        width, height, limit = map(int, too_big.groups())
        return _pixel_limit_message(path, width, height, limit)
    if "not on whitelist" in text:
        fmt = next((m.group(1) for m in map(_CONTEXT_RE.match, lines) if m and "whitelist" in m.string), "")
        kind = f"a '{fmt}' file" if fmt else "an unsupported format"
        hint = " (an HLS playlist, which may point at other files)" if fmt == "hls" else ""
        return (f"video {path} is {kind}{hint}, not a video container videogen accepts "
                f"({', '.join(DEMUXER_WHITELIST)}); convert it to mp4 first")
    if "moov atom not found" in text and not _looks_like_mp4(path):
        return f"video {path} is not a video file ffmpeg can read (unknown data); check that it is really a video"
    if "moov atom not found" in text:
        return (f"video {path} has no moov atom: the mp4 is truncated or was not finished; "
                f"download it again or re-encode it")
    if "Invalid data found" in text or "could not find codec parameters" in text.lower():
        return f"video {path} is not a video file ffmpeg can read (invalid data); check that it is really a video"
    last = _strip_log_prefix(lines[-1]) if lines else "no error message"
    return f"{tool} could not read video {path}: {last}; check that it is a valid video file"


# Top-level box types an mp4/mov file starts with (ISO/IEC 14496-12 and QuickTime).
_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"moof",
                    b"sidx", b"pdin", b"meta"}


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head[4:8] in _MP4_FIRST_BOXES


def _pixel_limit_message(path: Path, width: int, height: int, limit: int) -> str:
    return (f"video {path} is {width}x{height} ({width * height:,} pixels), over the limit of {limit:,} pixels; "
            f"downscale it first (e.g. to 1920x1080) or raise --max-pixels")


def _strip_log_prefix(line: str) -> str:
    line = _NESTED_CONTEXT_RE.sub("", line).strip()
    m = _LEVEL_RE.match(line)
    return m.group(2) if m else line


def _parse_rate(rate: object) -> float:
    """Frames per second from ffprobe's ``"30000/1001"`` (or a plain number); 0 for anything else or not positive. The
    text is matched first: ``Fraction("1e999999999")`` would compute a billion-digit number."""
    if isinstance(rate, str) and (match := _RATE_RE.fullmatch(rate)):
        num, den = int(match.group(1)), int(match.group(2) or 1)
        value = num / den if den else 0.0
    elif isinstance(rate, (int, float)) and not isinstance(rate, bool):
        value = float(rate)
    else:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _rotation_of(stream: dict) -> int:
    sides = stream.get("side_data_list")
    for side in sides if isinstance(sides, list) else []:
        if isinstance(side, dict) and "rotation" in side:
            return _degrees(side["rotation"])
    tags = stream.get("tags")
    return _degrees(tags.get("rotate", 0)) if isinstance(tags, dict) else 0


def _degrees(value: object) -> int:
    """A rotation in whole degrees (0 when it is not a finite number)."""
    try:
        degrees = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return int(round(degrees)) if math.isfinite(degrees) else 0


def _ffprobe_output(path: Path, timeout_s: float, max_pixels: int) -> tuple[bytes, str]:
    """ffprobe's streams and format of a checked local file as JSON text, and its stderr."""
    cmd = ["ffprobe", "-v", "error", "-hide_banner"]
    for key, value in _input_options(max_pixels).items():
        cmd += [f"-{key}", str(value)]
    cmd += ["-show_streams", "-show_format", "-of", "json", _input_url(path)]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InputError(f"probing video {path} took longer than {timeout_s:g} s; the file may be damaged or hostile, "
                         f"try another file or raise --timeout-s") from None
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        raise InputError(_ffmpeg_failure(path, stderr, "ffprobe"))
    return result.stdout, stderr


def _duration_of(stream: dict, fmt: dict) -> float:
    """Seconds, from the stream or else the container (0 when neither says)."""
    for candidate in (stream.get("duration"), fmt.get("duration")):
        try:
            duration = float(candidate)
        except (TypeError, ValueError):
            continue
        if 0 < duration < _MAX_DURATION_S:
            return duration
    return 0.0


def probe_video(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S, max_pixels: int = DEFAULT_MAX_PIXELS,
                min_frames: int = MIN_FRAMES) -> VideoInfo:
    """Probe a video with ffprobe (whitelisted demuxers, local files only, pixel limit, timeout) and refuse what is not
    a usable video.

    Args:
        path: Local video file.
        timeout_s: Seconds ffprobe may run before it is killed.
        max_pixels: Largest allowed width x height of a frame.
        min_frames: Refuse a video whose container says it has fewer frames (0 disables the check).

    Returns:
        The first video stream's :class:`VideoInfo`; ``width``/``height`` are the upright display size.

    Raises:
        InputError: missing/empty file, not a whitelisted container (random bytes, HLS playlist, ...), moov missing,
            no video stream (audio-only), too few frames, frames larger than ``max_pixels``, or ffprobe timed out.
    """
    path = check_input_file(path)
    output, stderr = _ffprobe_output(path, timeout_s, max_pixels)
    return parse_probe(path, output, stderr, max_pixels=max_pixels, min_frames=min_frames)


def parse_probe(path: Path, output: bytes, stderr: str = "", max_pixels: int = DEFAULT_MAX_PIXELS,
                min_frames: int = MIN_FRAMES) -> VideoInfo:
    """The :class:`VideoInfo` of ffprobe's JSON output (``-show_streams -show_format -of json``) about ``path``.

    Raises:
        InputError: the output is not ffprobe's JSON, or it describes no usable video (see :func:`probe_video`).
    """
    data = _probe_data(path, output)
    streams = [s for s in data["streams"] if s.get("codec_type") == "video"
               and not (s.get("disposition") if isinstance(s.get("disposition"), dict) else {}).get("attached_pic")]
    if not streams:
        kinds = sorted({str(s.get("codec_type", "?")) for s in data["streams"]})
        has = f"only {'/'.join(kinds)} streams" if kinds else "no streams"
        raise InputError(f"video {path} has no video stream ({has}); pass a file that contains video")
    stream, fmt = streams[0], data["format"]

    coded_w, coded_h = _whole(stream.get("width")), _whole(stream.get("height"))
    too_big = _PIXEL_LIMIT_RE.search(stderr)
    if too_big:
        raise InputError(_pixel_limit_message(path, *map(int, too_big.groups())))
    if coded_w <= 0 or coded_h <= 0:
        raise InputError(f"video {path} has a video stream without a frame size; the file is damaged, try another")
    if coded_w * coded_h > max_pixels:
        raise InputError(_pixel_limit_message(path, coded_w, coded_h, max_pixels))
    rotation = _rotation_of(stream)
    width, height = (coded_h, coded_w) if rotation % 180 == 90 else (coded_w, coded_h)

    fps = _parse_rate(stream.get("avg_frame_rate")) or _parse_rate(stream.get("r_frame_rate"))
    duration = _duration_of(stream, fmt)
    header_frames = _whole(stream.get("nb_frames"))
    num_frames = header_frames or (int(round(duration * fps)) if duration > 0 and fps > 0 else 0)
    if 0 < num_frames < min_frames and header_frames:
        raise InputError(f"video {path} has only {num_frames} frame(s); at least {min_frames} are needed "
                         f"(one training pair and one validation pair), pass a longer video")
    if fps <= 0 and duration > 0 and header_frames:
        fps = header_frames / duration

    return VideoInfo(width=width, height=height, fps=fps, num_frames=num_frames, rotation=rotation,
                     codec=str(stream.get("codec_name", "")), format_name=str(fmt.get("format_name", "")),
                     duration=duration, num_frames_exact=bool(header_frames), coded_width=coded_w,
                     coded_height=coded_h)


def _probe_data(path: Path, output: bytes) -> dict:
    """ffprobe's JSON output as ``{"streams": [dict, ...], "format": dict}``."""
    try:
        data = json.loads(output or b"{}")
    except (ValueError, RecursionError):  # JSONDecodeError; UnicodeDecodeError (not UTF-8); nesting too deep
        raise InputError(f"ffprobe gave unreadable output for video {path}; check that it is a valid video") from None
    streams = data.get("streams", []) if isinstance(data, dict) else None
    fmt = (data.get("format") or {}) if isinstance(data, dict) else None
    if not (isinstance(streams, list) and all(isinstance(s, dict) for s in streams) and isinstance(fmt, dict)):
        raise InputError(f"ffprobe gave output of an unexpected shape for video {path} (not its streams and format); "
                         f"check that it is a valid video and that ffprobe is FFmpeg's")
    return {"streams": streams, "format": fmt}


def _whole(value: object) -> int:
    """A count or size ffprobe gave (an int, or a string of one); 0 when it is missing or not a positive one."""
    try:
        number = int(value or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # a list, a word, an infinity
        return 0
    return max(number, 0)


# FFmpeg 5.1 renamed `-vsync` to `-fps_mode` (same values); 4.4 (Ubuntu 22.04) knows only `-vsync`. Older is refused.
FFMPEG_MIN_VERSION = (4, 4)
FFMPEG_FPS_MODE_VERSION = (5, 1)
_FFMPEG_VERSION_RE = re.compile(r"^\s*ffmpeg version n?(\d+)\.(\d+)")


class FFmpegVersionError(VideogenError):
    """The installed ffmpeg is older than videogen supports (or missing)."""


def parse_ffmpeg_version(first_line: str) -> tuple[int, int] | None:
    """``(major, minor)`` from the first line of ``ffmpeg -version``, e.g. ``ffmpeg version 4.4.2-0ubuntu0.22.04.1``
    or ``ffmpeg version n6.1``. ``None`` for git builds (``ffmpeg version N-112345-g...``) and anything else
    unparsable: those are taken as the newest ffmpeg."""
    match = _FFMPEG_VERSION_RE.match(first_line)
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.lru_cache(maxsize=1)
def ffmpeg_version_line() -> str:
    """The first line of ``ffmpeg -version``; run once per process (cached)."""
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=DEFAULT_TIMEOUT_S)
    except FileNotFoundError:
        raise FFmpegVersionError("ffmpeg is not installed (not on PATH); install FFmpeg 4.4 or newer "
                                 "(Debian/Ubuntu: apt-get install ffmpeg)") from None
    return (out.stdout.splitlines() or [""])[0].strip()


def passthrough_option(version_line: str | None = None) -> dict[str, str]:
    """The ffmpeg output option that emits every decoded frame exactly once: ``-fps_mode passthrough`` on FFmpeg
    >= 5.1, ``-vsync passthrough`` on 4.4 to 5.0. Raises :class:`FFmpegVersionError` for FFmpeg older than 4.4.

    Args:
        version_line: First line of ``ffmpeg -version``; by default the installed ffmpeg's (asked once per process).
    """
    line = ffmpeg_version_line() if version_line is None else version_line
    version = parse_ffmpeg_version(line)
    if version is not None and version < FFMPEG_MIN_VERSION:
        raise FFmpegVersionError(
            f"ffmpeg {version[0]}.{version[1]} is too old ({line!r}); videogen needs FFmpeg 4.4 or newer: install a "
            f"newer ffmpeg (e.g. Ubuntu 22.04+ or Debian 12+ packages, or a static build) and put it first on PATH")
    if version is not None and version < FFMPEG_FPS_MODE_VERSION:
        return {"vsync": "passthrough"}
    return {"fps_mode": "passthrough"}


def decode_stream(path: Path, image_size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = 0):
    """The ffmpeg-python stream that decodes ``path`` to raw rgb24 ``image_size`` x ``image_size`` frames on stdout.

    The filter graph center-crops to a square (after ffmpeg's autorotation, so frames are upright) and scales to
    ``image_size``. ``-fps_mode passthrough`` (``-vsync passthrough`` before FFmpeg 5.1, see
    :func:`passthrough_option`) emits every decoded frame exactly once: the default constant-rate conversion
    duplicates frames of variable-frame-rate videos.

    Returns:
        An ffmpeg-python output stream; ``.get_args()`` gives the command line (without the ``ffmpeg`` binary).
    """
    passthrough = passthrough_option()
    source = ffmpeg.input(_input_url(path), **_input_options(max_pixels))
    video = (source["v:0"]
             .filter("crop", "min(iw,ih)", "min(iw,ih)")
             .filter("scale", image_size, image_size, flags="area")
             .filter("setsar", 1))
    options = {"format": "rawvideo", "pix_fmt": "rgb24", **passthrough}
    if max_frames:
        options["frames:v"] = int(max_frames)
    return video.output("pipe:", **options).global_args("-nostdin", "-hide_banner", "-loglevel", "level+warning")


class _StderrCollector(threading.Thread):
    """Drains a process's stderr (so ffmpeg never blocks on a full pipe) and keeps what a report needs."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.errors: list[str] = []
        self.error_count = 0

    def run(self) -> None:
        for raw in iter(self._pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.tail.append(line)
            if "[error]" in line or "[fatal]" in line or "[panic]" in line:
                self.error_count += 1
                if len(self.errors) < 20:
                    self.errors.append(_strip_log_prefix(line))
        self._pipe.close()

    def last_line(self) -> str:
        return _strip_log_prefix(self.tail[-1]) if self.tail else "no error message"


class _Watchdog(threading.Thread):
    """Kills a process when an armed wait (a read from or write to its pipe) lasts longer than ``timeout_s``."""

    def __init__(self, proc: subprocess.Popen, timeout_s: float) -> None:
        super().__init__(daemon=True)
        self._proc = proc
        self._timeout_s = timeout_s
        self._deadline: float | None = None
        self._stopped = threading.Event()
        self.fired = False

    def arm(self) -> None:
        self._deadline = time.monotonic() + self._timeout_s

    def disarm(self) -> None:
        self._deadline = None

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(min(0.25, self._timeout_s)):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline and self._proc.poll() is None:
                self.fired = True
                self._proc.kill()
                return


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a killed process that does not exit
        log.error("ffmpeg (pid %d) did not exit after SIGKILL", proc.pid)


def _read_full(stream, view: memoryview, watchdog: _Watchdog) -> int:
    """Read until ``view`` is full or EOF, re-arming ``watchdog`` on every read that brought bytes (a stall is time
    without progress, not a slow but steady decode); returns the number of bytes read."""
    filled = 0
    while filled < len(view):
        watchdog.arm()
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


class FrameDecoder:
    """Decode a video to square uint8 frames through one ffmpeg pipe (rawvideo rgb24 on stdout).

    Iterate it for single frames, or call :meth:`batches` for large blocks (what ``prepare`` uses: one read and one
    memcpy per block, no per-frame Python work). After the iteration ends, ``frames_decoded``, ``partial`` and
    ``warnings`` describe the decode.

    Partial-file policy: a file cut in its data (or otherwise damaged) decodes with errors but ffmpeg still exits 0. We
    keep what decoded and never hide it: when ffmpeg logged decode errors, or fewer frames came out than the container's
    header promised, ``partial`` is True, ``warnings`` says what happened, and a WARNING is logged. A non-zero exit status,
    a frame cut short, or a stall longer than ``timeout_s`` raise :class:`InputError` quoting ffmpeg's stderr.
    Callers decide what "too few frames" means (``prepare`` needs at least 3).
    """

    def __init__(self, path: Path, image_size: int, *, info: VideoInfo | None = None, max_frames: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = check_input_file(path)
        self.image_size = int(image_size)
        self.info = info
        self.max_frames = int(max_frames)
        self.max_pixels = int(max_pixels)
        self.timeout_s = float(timeout_s)
        self.frames_decoded = 0
        self.partial = False
        self.warnings: list[str] = []
        self._started = False

    @property
    def frame_bytes(self) -> int:
        return self.image_size * self.image_size * 3

    def command(self) -> list[str]:
        stream = decode_stream(self.path, self.image_size, max_pixels=self.max_pixels, max_frames=self.max_frames)
        return ["ffmpeg", *stream.get_args()]

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.batches():
            for frame in batch:
                yield frame.copy()

    def batches(self, batch_bytes: int = _READ_CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Yield blocks of frames, uint8 ``(k, S, S, 3)``.

        Each block is a view of one reused buffer, valid only until the next block is requested: copy or write it out
        before asking for the next one.
        """
        if self._started:
            raise RuntimeError("a FrameDecoder decodes once; make a new one")
        self._started = True
        size, frame_bytes = self.image_size, self.frame_bytes
        frames_per_batch = max(1, batch_bytes // frame_bytes)
        buffer = np.empty((frames_per_batch, size, size, 3), dtype=np.uint8)
        view = memoryview(buffer).cast("B")
        proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
        stderr = _StderrCollector(proc.stderr)
        watchdog = _Watchdog(proc, self.timeout_s)
        stderr.start()
        watchdog.start()
        try:
            while True:
                filled = _read_full(proc.stdout, view, watchdog)
                watchdog.disarm()
                whole = filled // frame_bytes
                if whole:
                    self.frames_decoded += whole
                    yield buffer[:whole]
                if filled < len(view):
                    leftover = filled - whole * frame_bytes
                    break
            watchdog.arm()
            try:
                returncode = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                returncode = None
            watchdog.disarm()
            stderr.join(timeout=5)
            if watchdog.fired or returncode is None:
                raise InputError(f"decoding video {self.path} made no progress for {self.timeout_s:g} s and was "
                                 f"stopped; the file may be damaged or hostile, try another file")
            if returncode != 0:
                text = "\n".join(stderr.tail)
                too_big = _PIXEL_LIMIT_RE.search(text)
                if too_big:
                    raise InputError(_pixel_limit_message(self.path, *map(int, too_big.groups())))
                if self.frames_decoded == 0 and ("not on whitelist" in text or "moov atom" in text):
                    raise InputError(_ffmpeg_failure(self.path, text, "ffmpeg"))  # could not open it at all
                first, last = (stderr.errors[0] if stderr.errors else ""), stderr.last_line()
                reason = f"{first} (last: {last})" if first and first != last else last
                raise InputError(f"ffmpeg failed decoding video {self.path} after {self.frames_decoded} frame(s): "
                                 f"{reason}; the file is damaged or cut, try another file")
            if leftover:
                raise InputError(f"ffmpeg's output for video {self.path} ended inside a frame "
                                 f"({leftover} of {frame_bytes} bytes); the file is damaged, try another")
            self._review(stderr)
        finally:
            watchdog.stop()
            _kill(proc)
            if proc.stdout:
                proc.stdout.close()

    def _review(self, stderr: _StderrCollector) -> None:
        """Decide whether the decode was partial and say so (never silently)."""
        expected = self.info.num_frames if (self.info and self.info.num_frames_exact) else 0
        if self.max_frames:
            expected = min(expected, self.max_frames) if expected else 0
        if stderr.error_count:
            self.partial = True
            self.warnings.append(
                f"ffmpeg reported {stderr.error_count} decode error(s) (first: {stderr.errors[0]}); the file looks cut "
                f"or damaged: {self.frames_decoded} frame(s) decoded"
                + (f" of {expected} in its header" if expected else "") + ", using those")
        elif expected and self.frames_decoded < expected:
            self.partial = True
            self.warnings.append(f"decoded {self.frames_decoded} frame(s) but the header lists {expected}; "
                                 f"the file may be cut or damaged, using the frames that decoded")
        for message in self.warnings:
            log.warning("%s: %s", self.path, message)


def _rate_string(fps: float) -> str:
    rate = Fraction(fps).limit_denominator(100000)
    return f"{rate.numerator}/{rate.denominator}"


def encode_stream(output: Path | str, size: int | tuple[int, int], fps: float, *, crf: int = DEFAULT_CRF,
                  preset: str = DEFAULT_PRESET):
    """The ffmpeg-python stream that encodes rawvideo rgb24 frames from stdin to a browser-playable H.264 mp4.

    Args:
        output: File to write (``VideoWriter`` passes a temporary name; the format is forced to mp4).
        size: Frame size: ``S`` for square frames or ``(width, height)``; both even (yuv420p halves chroma).
        fps: Frame rate of the video.
        crf: x264 constant rate factor (18: visually near lossless).
        preset: x264 preset.

    Returns:
        An ffmpeg-python output stream; ``.get_args()`` gives the command line.
    """
    width, height = (size, size) if isinstance(size, int) else size
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise InputError(f"frame size {width}x{height} cannot be encoded as yuv420p; width and height must be even")
    if not fps or fps <= 0:
        raise InputError(f"frame rate {fps} is not positive; pass --fps with a positive number")
    source = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                          framerate=_rate_string(fps))
    return (source.output(str(output), format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=int(crf),
                          preset=preset, movflags="+faststart")
            .global_args("-nostdin", "-hide_banner", "-loglevel", "level+error")
            .overwrite_output())


class VideoWriter:
    """Stream uint8 RGB frames into an H.264 mp4 (context manager).

    Frames go through a bounded queue to a writer thread that feeds ffmpeg's stdin, so the producer keeps computing the
    next frames while ffmpeg encodes. The file is written under a temporary name in the same directory and renamed into
    place only when ffmpeg succeeded: a failure or an exception inside the ``with`` block leaves no mp4 that looks
    finished (the temporary file is deleted). A stall of ``timeout_s`` kills ffmpeg.

    Example::

        with VideoWriter(out, width=256, height=256, fps=25) as writer:
            for frame in frames:
                writer.write(frame)
        writer.result  # {"path": ..., "frames": ..., "bytes": ...}
    """

    def __init__(self, output: Path, width: int, height: int, fps: float, *, crf: int = DEFAULT_CRF,
                 preset: str = DEFAULT_PRESET, queue_size: int = 16, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.output = Path(output)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.timeout_s = float(timeout_s)
        self.frames_written = 0
        self.result: dict | None = None
        self._temp = self.output.parent / f".{self.output.name}.{uuid.uuid4().hex[:8]}.partial"
        self._stream = encode_stream(self._temp, (self.width, self.height), self.fps, crf=crf, preset=preset)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._stderr: _StderrCollector | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._blocks_fed = 0  # advanced by the writer thread; a stall is no advance for timeout_s

    def command(self) -> list[str]:
        return ["ffmpeg", *self._stream.get_args()]

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        if self._proc is not None:
            return
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        self._stderr = _StderrCollector(self._proc.stderr)
        self._stderr.start()
        self._thread = threading.Thread(target=self._feed, name="videogen-ffmpeg-writer", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        stdin = self._proc.stdin
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                stdin.write(memoryview(item).cast("B"))
                self._blocks_fed += 1
        except BaseException as error:  # noqa: BLE001 - handed to the producer thread
            self._error = error
        finally:
            try:
                stdin.close()
            except OSError:
                pass
            # Unblock a producer waiting on a full queue after a failure.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _stalled(self) -> VideogenError:
        self.abort()
        return VideogenError(f"ffmpeg made no progress encoding {self.output} for {self.timeout_s:g} s and was "
                             f"stopped; check free disk space and CPU load")

    def _put(self, item) -> None:
        fed, since = self._blocks_fed, time.monotonic()
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                if self._blocks_fed != fed:
                    fed, since = self._blocks_fed, time.monotonic()
                elif time.monotonic() - since > self.timeout_s:
                    raise self._stalled() from None

    def _wait_for_writer(self) -> None:
        fed, since = self._blocks_fed, time.monotonic()
        while self._thread.is_alive():
            self._thread.join(timeout=0.25)
            if self._blocks_fed != fed:
                fed, since = self._blocks_fed, time.monotonic()
            elif time.monotonic() - since > self.timeout_s:
                raise self._stalled()

    def _raise_if_failed(self) -> None:
        if self._error is not None or (self._thread is not None and not self._thread.is_alive()
                                       and not self._closed):
            reason = self._stderr.last_line() if self._stderr else str(self._error)
            self.abort()
            raise VideogenError(f"ffmpeg failed encoding {self.output}: {reason}; check free disk space and the "
                                f"output path")

    def write(self, frames: np.ndarray) -> None:
        """Queue one frame ``(H, W, 3)`` or a block ``(k, H, W, 3)`` of uint8 RGB frames (copied, so the caller may
        reuse its buffer)."""
        if self._proc is None:
            self.open()
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        frames = np.asarray(frames)
        block = frames[None] if frames.ndim == 3 else frames
        if block.ndim != 4 or block.shape[1:] != (self.height, self.width, 3) or block.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames of shape (..., {self.height}, {self.width}, 3), "
                             f"got {frames.dtype} {frames.shape}")
        self._put(np.array(block, copy=True, order="C"))
        self.frames_written += len(block)

    def close(self) -> dict:
        """Finish the file: flush the queue, wait for ffmpeg, rename the temporary file into place.

        Returns:
            ``{"path", "frames", "bytes"}``.

        Raises:
            VideogenError: ffmpeg failed or stalled (the temporary file is deleted).
        """
        if self.result is not None:
            return self.result
        if self._proc is None:
            self.open()
        self._put(None)
        self._closed = True
        self._wait_for_writer()
        try:
            returncode = self._proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        self._stderr.join(timeout=5)
        if returncode != 0 or self._error is not None:
            reason = ("timed out" if returncode is None else self._stderr.last_line())
            self.abort()
            raise VideogenError(f"ffmpeg failed encoding {self.output}: {reason}; check free disk space and the "
                                f"output path")
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"no frames were given for {self.output}; nothing to encode")
        os.replace(self._temp, self.output)
        self.result = {"path": str(self.output), "frames": self.frames_written,
                       "bytes": self.output.stat().st_size}
        return self.result

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file; the output path is left untouched."""
        self._closed = True
        if self._proc is not None:
            _kill(self._proc)
        try:  # wake a writer thread idle on an empty queue; a busy one fails on the dead pipe instead
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._temp.unlink(missing_ok=True)
