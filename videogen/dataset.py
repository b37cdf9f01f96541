"""Stage "prepare": turn a video into a next-frame dataset directory.

Reads one local video file (untrusted: probed and decoded through :mod:`videogen.video`'s hardened ffmpeg calls).
Writes a dataset directory (docs/design.md):

- ``frames.npy``: uint8 ``(N, S, S, 3)``, upright, center-cropped and scaled frames, every decoded frame once, loadable
  with ``np.load(path, mmap_mode="r")``. It is streamed to disk while ffmpeg decodes (one pipe, large reads).
- ``dataset.json``: ``fps``, ``image_size``, ``num_frames``, ``source``, ``train`` and ``val`` (``[first_pair,
  end_pair)``; pair i is frame i -> frame i+1), ``start_frame``, ``seed``, ``settings``, ``source_width``,
  ``source_height``, ``rotation``, ``partial_decode`` and ``notes``.

Train and val are contiguous blocks of pairs in time, train first and val last, so that near-identical neighbouring
frames do not leak from training into validation. The directory is assembled under a temporary name beside
``output_dir`` and renamed into place only when complete: a failing prepare leaves nothing that looks finished.

Optionally (``export_ab``) writes pix2pix-tensorflow's "A|B" paired PNG folders ``train/`` and ``val/``.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videogen import video as _video
from videogen.artifacts import (
    DATASET_FILE,
    FRAMES_FILE,
    VIDEOS_KEY,
    atomic_write_json,
    npy_header,
    open_dataset,
)
from videogen.errors import InputError
from videogen.model import SUPPORTED_IMAGE_SIZES
from videogen.progress import Progress

log = logging.getLogger("videogen.prepare")

# numpy's .npy v1.0 header for a 4-d uint8 array is padded to 128 bytes (a multiple of 64); we reserve that much in
# front of the streamed frames and write the header once the frame count is known.
_NPY_HEADER_BYTES = 128
# Free space kept in reserve beyond the dataset's own size.
_DISK_MARGIN_BYTES = 64 << 20


@dataclass(frozen=True)
class PrepareSettings:
    """Settings of the prepare stage (CLI flags and component parameters of the same names)."""

    image_size: int = field(default=256, metadata={
        "help": "side of the square frames in pixels: 64, 128, 256 or 512 (center crop, then scale)"})
    train_ratio: float = field(default=0.9, metadata={
        "help": "share of frame pairs used for training; the first block in time trains, the last validates"})
    seed: int = field(default=0, metadata={"help": "random seed for the start frame drawn from the validation block"})
    max_pixels: int = field(default=_video.DEFAULT_MAX_PIXELS, metadata={
        "help": "refuse videos whose frames have more pixels than this (default: 4K UHD 3840x2160 passes, 8K fails)"})
    max_frames: int = field(default=0, metadata={"help": "use at most this many frames from the start (0 = all)"})
    timeout_s: float = field(default=_video.DEFAULT_TIMEOUT_S, metadata={
        "help": "seconds ffprobe may take, and seconds ffmpeg may go without progress, before they are stopped"})

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise InputError(f"--image-size {self.image_size} is not supported; use one of "
                             f"{', '.join(map(str, SUPPORTED_IMAGE_SIZES))}")
        if not 0.0 < float(self.train_ratio) < 1.0:
            raise InputError(f"--train-ratio {self.train_ratio} must be between 0 and 1 (exclusive), e.g. 0.9")
        if self.max_pixels <= 0:
            raise InputError(f"--max-pixels {self.max_pixels} must be positive, e.g. {_video.DEFAULT_MAX_PIXELS}")
        if self.max_frames < 0 or 0 < self.max_frames < _video.MIN_FRAMES:
            raise InputError(f"--max-frames {self.max_frames} must be 0 (all) or at least {_video.MIN_FRAMES}")
        if not self.timeout_s > 0:
            raise InputError(f"--timeout-s {self.timeout_s} must be positive, e.g. {_video.DEFAULT_TIMEOUT_S:g}")


def split_pairs(num_frames: int, train_ratio: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Split the ``num_frames - 1`` pairs into a train block followed by a val block, both non-empty.

    Returns:
        ``((0, end_train), (end_train, num_pairs))``, half-open ranges of pair indices.

    Raises:
        InputError: fewer than 3 frames (one pair for each block).
    """
    num_pairs = num_frames - 1
    if num_pairs < 2:
        raise InputError(f"the video has {num_frames} frame(s); at least {_video.MIN_FRAMES} are needed "
                         f"(one training pair and one validation pair), pass a longer video")
    end_train = min(max(int(round(train_ratio * num_pairs)), 1), num_pairs - 1)
    return (0, end_train), (end_train, num_pairs)


def choose_start_frame(val: tuple[int, int], seed: int) -> int:
    """A frame index drawn reproducibly from ``seed`` among the val block's input frames ``[val[0], val[1])``."""
    return int(np.random.default_rng(seed).integers(val[0], val[1]))


def check_free_space(directory: Path, needed_bytes: int, what: str) -> None:
    """Refuse to start when ``directory``'s file system has less than ``needed_bytes`` (plus a margin) free.

    Raises:
        InputError: with the sizes and what to do.
    """
    probe_dir = Path(directory).resolve()
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    free = shutil.disk_usage(probe_dir).free
    if free < needed_bytes + _DISK_MARGIN_BYTES:
        raise InputError(f"not enough free disk space in {probe_dir} for {what}: about {_mb(needed_bytes)} needed, "
                         f"{_mb(free)} free; free some space, choose another output directory, or lower "
                         f"--image-size / --max-frames")


def _mb(num_bytes: float) -> str:
    return f"{num_bytes / 1e6:,.1f} MB"


def _temporary_sibling(path: Path) -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.partial"


def _check_replaceable(output_dir: Path, marker: str) -> None:
    """Refuse an output path that holds something other than an empty dir or a previous output with ``marker``."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise InputError(f"output {output_dir} exists and is not a directory; choose another output path")
        if any(output_dir.iterdir()) and not (output_dir / marker).exists():
            raise InputError(f"output directory {output_dir} is not empty and holds no previous {marker}; "
                             f"choose a new or empty directory")


def _move_into_place(temp_dir: Path, output_dir: Path, marker: str) -> None:
    """Rename a finished ``temp_dir`` to ``output_dir``. An existing empty dir, or a previous output of the same kind
    (it holds ``marker``), is replaced; anything else is refused rather than overwritten."""
    _check_replaceable(output_dir, marker)
    if output_dir.exists():
        old = _temporary_sibling(output_dir)
        output_dir.rename(old)
        try:
            temp_dir.rename(output_dir)
        except BaseException:
            old.rename(output_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        temp_dir.rename(output_dir)


def _write_frames(decoder: _video.FrameDecoder, path: Path, expected: int) -> int:
    """Stream the decoder's blocks into ``path`` as a .npy file; returns the number of frames written."""
    size = decoder.image_size
    started = last_log = time.monotonic()
    with open(path, "wb") as out, Progress(log, "prepare", expected, unit="frame") as progress:
        out.write(b"\0" * _NPY_HEADER_BYTES)
        for block in decoder.batches():
            out.write(memoryview(block).cast("B"))
            now = time.monotonic()
            progress.update(decoder.frames_decoded)
            if now - last_log > 5.0:
                last_log = now
                done = decoder.frames_decoded
                rate = done / max(now - started, 1e-9)
                eta = f", ETA {max(expected - done, 0) / rate:.0f} s" if expected and rate > 0 else ""
                progress.log("decoded %d/%s frames (%.0f frames/s%s)", done, expected or "?", rate, eta, postfix="")
        count = decoder.frames_decoded
        header = npy_header((count, size, size, 3))
        if len(header) != _NPY_HEADER_BYTES:  # pragma: no cover - only for absurd frame counts
            raise RuntimeError(f"unexpected .npy header length {len(header)}")
        out.seek(0)
        out.write(header)
    return count


def _check_space_for(info: _video.VideoInfo, settings: PrepareSettings, output_dir: Path,
                     export_ab: Path | None) -> int:
    """The expected frame count (0 = unknown), after refusing a disk too small for it."""
    size = settings.image_size
    expected = info.num_frames
    if settings.max_frames:
        expected = min(expected, settings.max_frames) if expected else settings.max_frames
    if expected:
        check_free_space(output_dir.parent, expected * size * size * 3, f"{expected} frames of {size}x{size}")
        if export_ab is not None:  # PNG pairs: at most the raw size of two frames each
            check_free_space(Path(export_ab).parent, expected * size * size * 6, "the A|B PNG pairs")
    return expected


def _decode(video_path: Path, info: _video.VideoInfo, settings: PrepareSettings, frames_path: Path, expected: int,
            output_dir: Path) -> dict:
    """Decode the video into ``frames_path``; returns the dataset.json content."""
    decoder = _video.FrameDecoder(video_path, settings.image_size, info=info, max_frames=settings.max_frames,
                                  max_pixels=settings.max_pixels, timeout_s=settings.timeout_s)
    started = time.monotonic()
    try:
        num_frames = _write_frames(decoder, frames_path, expected)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InputError(f"the disk filled up while writing the dataset to {output_dir}; free some space or "
                             f"lower --image-size / --max-frames") from None
        raise
    seconds = time.monotonic() - started
    if num_frames < _video.MIN_FRAMES:
        raise InputError(f"video {video_path} decoded to only {num_frames} frame(s); at least "
                         f"{_video.MIN_FRAMES} are needed, pass a longer or undamaged video")
    train, val = split_pairs(num_frames, settings.train_ratio)
    notes = list(decoder.warnings)
    if info.fps <= 0:
        notes.append("the container gives no frame rate; 25 fps assumed")
    return {
        "fps": info.fps if info.fps > 0 else 25.0, "image_size": settings.image_size, "num_frames": num_frames,
        "source": str(video_path), "train": list(train), "val": list(val),
        "start_frame": choose_start_frame(val, settings.seed), "seed": settings.seed,
        "settings": dataclasses.asdict(settings), "source_width": info.width, "source_height": info.height,
        "rotation": info.rotation, "source_codec": info.codec, "source_format": info.format_name,
        "source_frames": info.num_frames, "partial_decode": decoder.partial, "notes": notes,
        "decode_frames_per_s": round(num_frames / max(seconds, 1e-9), 1),
    }


def prepare(video: Path, output_dir: Path, settings: PrepareSettings = PrepareSettings(),
            export_ab: Path | None = None) -> dict:
    """Probe, decode and store a video as a next-frame dataset (see the module docstring for the layout).

    Partial-file policy (from :class:`videogen.video.FrameDecoder`): a file cut in its data or otherwise damaged is
    used as far as it decodes, if that is at least 3 frames; the WARNING log, ``partial_decode: true`` and ``notes`` in
    ``dataset.json`` say so.

    Args:
        video: Local video file.
        output_dir: Dataset directory to create (an existing empty one, or a previous dataset, is replaced).
        settings: :class:`PrepareSettings`.
        export_ab: When given, also write pix2pix "A|B" PNG folders ``train/`` and ``val/`` there.

    Returns:
        The content of ``dataset.json``.

    Raises:
        InputError: the video is unusable (see :func:`videogen.video.probe_video`), decodes to fewer than 3 frames,
            the disk is too full, or the output directory holds something else.
    """
    video_path, output_dir = Path(video), Path(output_dir)
    size = settings.image_size
    info = _video.probe_video(video_path, timeout_s=settings.timeout_s, max_pixels=settings.max_pixels)
    _check_replaceable(output_dir, DATASET_FILE)
    if export_ab is not None:
        _check_replaceable(Path(export_ab), "train")
    expected = _check_space_for(info, settings, output_dir, export_ab)
    if not expected:
        log.warning("%s: the container gives no frame count; the free-space check is skipped", video_path)
    log.info("%s: %dx%d (rotation %d), %s, %.3f fps, about %s frames -> %d px dataset in %s", video_path, info.width,
             info.height, info.rotation, info.codec, info.fps, expected or "?", size, output_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = _temporary_sibling(output_dir)
    temp_dir.mkdir()
    try:
        dataset_info = _decode(video_path, info, settings, temp_dir / FRAMES_FILE, expected, output_dir)
        atomic_write_json(temp_dir / DATASET_FILE, dataset_info)
        _move_into_place(temp_dir, output_dir, DATASET_FILE)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    log.info("wrote %d frames of %dx%d to %s (%.0f frames/s); train pairs %s, val pairs %s, start frame %d",
             dataset_info["num_frames"], size, size, output_dir, dataset_info["decode_frames_per_s"],
             tuple(dataset_info["train"]), tuple(dataset_info["val"]), dataset_info["start_frame"])
    if export_ab is not None:
        export_ab_pairs(output_dir, Path(export_ab))
    return dataset_info


def combine(dataset_dirs: list[Path], output_dir: Path, names: list[str] | None = None) -> dict:
    """Several prepared datasets, one per source video, as one dataset dir that one model trains on.

    The frames of all videos are stored one after the other in one ``frames.npy``; ``dataset.json`` keeps each
    video's own dataset.json under ``videos`` (its train and val blocks and start frame counted from its own first
    frame) with ``first_frame`` (its offset in the file) and ``name``, so a training pair, a context window or a
    validation block never reaches from one video into the next (:attr:`videogen.artifacts.Dataset.videos`). The
    top level has ``fps`` (the first video's), ``image_size``, ``num_frames`` (all videos) and ``source``. One
    dataset is passed through as it is (its frames linked when the file system allows), with its ``name`` set.

    Args:
        dataset_dirs: prepared dataset dirs, in the order of the videos.
        output_dir: where the combined dataset goes (replaced like :func:`prepare`'s output).
        names: each video's URI or path, for the reports (default: each dataset's ``source``).

    Raises:
        InputError: no datasets, datasets of different image sizes, or too little disk space.
    """
    datasets = [open_dataset(Path(d)) for d in dataset_dirs]
    if not datasets:
        raise InputError("no prepared videos to combine: the video list was empty; pass at least one video")
    names = list(names) if names is not None else [str(d.info.get("source", d.dir)) for d in datasets]
    sizes = sorted({d.image_size for d in datasets})
    if len(sizes) > 1:
        raise InputError(f"the prepared videos have different image sizes {sizes}: prepare them all with one "
                         f"--image-size")
    output_dir = Path(output_dir)
    _check_replaceable(output_dir, DATASET_FILE)
    total = sum(len(d.frames) for d in datasets)
    check_free_space(output_dir.parent, total * datasets[0].frames[0].nbytes, f"{total} frames of {len(datasets)} "
                                                                               f"videos")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = _temporary_sibling(output_dir)
    temp_dir.mkdir()
    try:
        info = _combine_into(datasets, names, temp_dir)
        _move_into_place(temp_dir, output_dir, DATASET_FILE)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    log.info("combined %d video(s), %d frames, into %s", len(datasets), total, output_dir)
    return info


def _combine_into(datasets: list, names: list[str], directory: Path) -> dict:
    """Write the combined ``frames.npy`` and ``dataset.json`` into ``directory``; returns the dataset.json content."""
    entries = [{**d.info, "name": Path(name.rstrip("/")).name or name, "source": name}
               for d, name in zip(datasets, names)]
    if len(datasets) == 1:
        try:
            os.link(datasets[0].dir / FRAMES_FILE, directory / FRAMES_FILE)
        except OSError:
            shutil.copyfile(datasets[0].dir / FRAMES_FILE, directory / FRAMES_FILE)
        atomic_write_json(directory / DATASET_FILE, entries[0])
        return entries[0]
    size, first = datasets[0].image_size, 0
    with open(directory / FRAMES_FILE, "wb") as out:
        out.write(npy_header((sum(len(d.frames) for d in datasets), size, size, 3)))
        for dataset, entry in zip(datasets, entries):
            for start in range(0, len(dataset.frames), 256):  # bounded memory: 256 frames at a time
                out.write(np.ascontiguousarray(dataset.frames[start:start + 256]).tobytes())
            entry.update(first_frame=first, num_frames=len(dataset.frames))
            first += len(dataset.frames)
    info = {"fps": datasets[0].fps, "image_size": size, "num_frames": first,
            "source": f"{len(entries)} videos: " + ", ".join(e["name"] for e in entries),
            "seed": entries[0].get("seed"), "settings": entries[0].get("settings"), VIDEOS_KEY: entries}
    atomic_write_json(directory / DATASET_FILE, info)
    return info


def load_dataset(dataset_dir: Path) -> tuple[np.ndarray, dict]:
    """Open a dataset directory written by :func:`prepare` (see :func:`videogen.artifacts.open_dataset`).

    Returns:
        ``(frames, info)``: the memory-mapped uint8 ``(N, S, S, 3)`` frames and the ``dataset.json`` content.

    Raises:
        InputError: the directory is missing or is not a (complete, consistent) dataset.
    """
    dataset = open_dataset(Path(dataset_dir))
    return dataset.frames, dataset.info


def write_ab_pairs(frames: np.ndarray, pairs: tuple[int, int], directory: Path) -> int:
    """Write pairs ``[pairs[0], pairs[1])`` as pix2pix-tensorflow "A|B" PNGs: frame t (A, input) left of frame t+1
    (B, target), ``S`` high and ``2S`` wide, named ``<pair index, 6 digits>.png``.

    Returns:
        The number of PNG files written.
    """
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    size = frames.shape[1]
    canvas = np.empty((size, 2 * size, 3), dtype=np.uint8)
    for pair in range(pairs[0], pairs[1]):
        canvas[:, :size] = frames[pair]
        canvas[:, size:] = frames[pair + 1]
        Image.fromarray(canvas).save(directory / f"{pair:06d}.png")
    return pairs[1] - pairs[0]


def export_ab_pairs(dataset_dir: Path, output_dir: Path) -> dict:
    """Export a dataset as pix2pix-tensorflow's "A|B" paired-image folders ``train/`` and ``val/`` (the format of the
    original workflow, for people who keep using pix2pix-tensorflow; ``--which_direction AtoB``).

    Written under a temporary name and renamed into place when complete.

    Returns:
        ``{"path", "train", "val"}`` with the number of images in each folder.
    """
    dataset = open_dataset(Path(dataset_dir))
    frames, info = dataset.frames, dataset.info
    output_dir = Path(output_dir)
    size = info["image_size"]
    # A PNG is never larger than its raw pixels plus a little framing.
    check_free_space(output_dir.parent, (info["num_frames"] - 1) * size * 2 * size * 3, "the A|B PNG pairs")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = _temporary_sibling(output_dir)
    try:
        counts = {name: sum(write_ab_pairs(frames, video.file_block(name), temp_dir / name)
                            for video in dataset.videos) for name in ("train", "val")}
        _move_into_place(temp_dir, output_dir, "train")
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    log.info("exported %d train and %d val A|B pairs to %s", counts["train"], counts["val"], output_dir)
    return {"path": str(output_dir), **counts}


# docs/design.md names the export `export_ab()`; `prepare(..., export_ab=DIR)` calls it.
export_ab = export_ab_pairs
