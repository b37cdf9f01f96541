"""The directories the stages hand to each other: file names, typed readers and the writers.

- dataset dir (prepare writes, train/evaluate/generate/export read): ``frames.npy`` uint8 ``(N, S, S, 3)`` and
  ``dataset.json``;
- model dir (train writes, evaluate/generate read): ``generator.keras``, ``model.json``, ``logs/`` (TensorBoard),
  ``generator_savedmodel/`` and, by default, ``checkpoints/``;
- generated dir (generate writes, encode/evaluate read): ``frames.npy`` uint8 ``(T, V, S, S, 3)``, time-major,
  ``generation.json`` and, in a resume dir, ``progress.json``;
- metrics dir (evaluate writes): ``metrics.json``, ``report.html``, ``summary.md``.

Every reader raises a one-line :class:`InputError` that says which stage to (re-)run. Every writer replaces its file
atomically (a temporary sibling renamed into place), so a reader never sees half a file. Importing this module does
not import TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import threading
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videogen.errors import InputError

FRAMES_FILE = "frames.npy"
DATASET_FILE = "dataset.json"
GENERATOR_FILE = "generator.keras"
MODEL_INFO_FILE = "model.json"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
HISTORY_FILE = "history.json"  # loss history beside the checkpoints, so that a resumed run keeps its curves
SAVEDMODEL_DIR = "generator_savedmodel"
GENERATION_FILE = "generation.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.md"
VIDEOS_KEY = "videos"  # dataset.json of a dataset made of several videos: one entry each

_PREPARE, _TRAIN, _GENERATE = "`videogen prepare`", "`videogen train`", "`videogen generate`"


# ----------------------------------------------------------------------------------------------------------- writers
def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding=encoding)
    os.replace(tmp, path)


def atomic_write_json(path: Path, content: Any, **dumps_options: Any) -> None:
    """``content`` as JSON (``indent=2`` unless told otherwise), replaced atomically."""
    dumps_options.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(content, **dumps_options) + "\n")


def move_file(source: Path, dest: Path) -> None:
    """Rename ``source`` to ``dest``; across file systems, copy then delete."""
    try:
        os.replace(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
        Path(source).unlink()


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy v1.0 header of a C-order uint8 array of ``shape`` (padded to a multiple of 64 bytes, as numpy does)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


class StreamWriter:
    """Appends frames to an .npy file of final ``shape`` from a writer thread (bounded queue).

    Every ``chunk`` frames the file is flushed and fsynced and ``on_flush(frames_done)`` is called, so compute
    overlaps with disk writes and memory stays at a few frames. ``frames_done`` > 0 continues a partial file.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], frames_done: int, chunk: int,
                 on_flush: Callable[[int], None]):
        header = npy_header(shape)
        frame_bytes = int(np.prod(shape[1:]))
        mode = "r+b" if frames_done and Path(path).exists() else "wb"
        self._file = open(path, mode)  # noqa: SIM115 - closed in close()
        if mode == "wb":
            self._file.write(header)
        self._file.truncate(len(header) + frames_done * frame_bytes)
        self._file.seek(len(header) + frames_done * frame_bytes)
        self.done = frames_done
        self._chunk = max(1, chunk)
        self._on_flush = on_flush
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="videogen-frame-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pending = 0
            while (frame := self._queue.get()) is not None:
                self._file.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
                pending += 1
                if pending >= self._chunk:
                    self._flush(pending)
                    pending = 0
            if pending:
                self._flush(pending)
        except BaseException as err:  # surfaced in put()/close()
            self._error = err
            while self._queue.get() is not None:  # keep draining so that put() never blocks forever
                pass

    def _flush(self, pending: int) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done += pending
        self._on_flush(self.done)

    def put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error


def read_frames_at(path: Path, shape: tuple[int, ...], first: int, end: int) -> list[np.ndarray]:
    """Frames ``[first, end)`` of a (possibly partial) streamed .npy file of final ``shape``, read by offset."""
    header_len, frame_bytes = len(npy_header(shape)), int(np.prod(shape[1:]))
    out = []
    with open(path, "rb") as f:  # a partial file is shorter than its header says, so np.load cannot open it
        for t in range(first, end):
            f.seek(header_len + t * frame_bytes)
            out.append(np.frombuffer(f.read(frame_bytes), np.uint8).reshape(shape[1:]))
    return out


def frames_written(path: Path, shape: tuple[int, ...]) -> int:
    """Complete frames a streamed .npy file of final ``shape`` holds (0 if it does not exist)."""
    if not Path(path).is_file():
        return 0
    return max(0, (Path(path).stat().st_size - len(npy_header(shape))) // int(np.prod(shape[1:])))


# ----------------------------------------------------------------------------------------------------------- readers
def _read_json_object(path: Path, redo: str) -> dict:
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not valid JSON ({err}): {redo}") from err
    if not isinstance(content, dict):
        raise InputError(f"{path} is not a JSON object; {redo}")
    return content


def open_frames_dir(directory: Path, info_file: str, *, what: str, damaged_as: str, made_by: str,
                    redo: str) -> tuple[np.ndarray, Any]:
    """Open a directory of ``frames.npy`` (memory-mapped) + a JSON info file, with one-line errors naming the
    missing file. The callers check shapes and fields."""
    directory = Path(directory)
    info_path, frames_path = directory / info_file, directory / FRAMES_FILE
    if not directory.is_dir():
        raise InputError(f"{what} {directory} does not exist; run {made_by} first")
    missing = [p.name for p in (frames_path, info_path) if not p.is_file()]
    if missing:
        raise InputError(f"{directory} is not a {what} (needs {info_file} and {FRAMES_FILE}): {missing[0]} is "
                         f"missing; pass the output of {made_by}")
    try:
        info = json.loads(info_path.read_text())
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        raise InputError(f"{info_path} in {damaged_as} {directory} is damaged (not readable JSON: "
                         f"{_first_sentence(error)}); {redo}") from None
    try:
        frames = _load_npy(frames_path)
    except NPY_ERRORS as error:
        raise InputError(f"{frames_path} in {damaged_as} {directory} is damaged (not a whole uint8 .npy array: "
                         f"{_first_sentence(error) or type(error).__name__}); {redo}") from None
    return frames, info


# What np.load raises for a damaged .npy/.npz (its header is parsed with tokenize and ast, its sizes multiplied out).
NPY_ERRORS = (ValueError, OSError, EOFError, OverflowError, SyntaxError, TypeError, MemoryError, tokenize.TokenError)


def _load_npy(path: Path) -> np.ndarray:
    """``np.load(path, mmap_mode="r")`` of a file that starts as an .npy file does: ``np.load`` also opens a zip (an
    .npz, as a dict-like NpzFile) and, told to, a pickle."""
    with open(path, "rb") as f:
        if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            raise ValueError("it does not start with the .npy magic bytes")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _first_sentence(error: BaseException) -> str:
    """A library error's first sentence, short enough for a one-line message (numpy's pickle advice is not one)."""
    text = str(error).split(". ")[0].strip().rstrip(".")
    return text if len(text) <= 100 else text[:97] + "..."


@dataclass(frozen=True)
class Dataset:
    """An opened dataset dir: memory-mapped uint8 ``frames`` ``(N, S, S, 3)`` and the ``dataset.json`` content."""

    dir: Path
    frames: np.ndarray
    info: dict

    @property
    def image_size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def fps(self) -> float:
        return float(self.info.get("fps") or 0.0)

    def block(self, key: str) -> tuple[int, int]:
        """The ``train`` or ``val`` block ``[first_pair, end_pair)``, checked against the frame count."""
        num_frames = len(self.frames)
        try:
            first, end = (int(v) for v in self.info[key])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{DATASET_FILE} needs '{key}': [first_pair, end_pair)") from None
        if not 0 <= first < end <= num_frames - 1:
            raise InputError(f"{DATASET_FILE} '{key}' pairs [{first}, {end}) do not fit {num_frames} frames")
        return first, end

    @property
    def first_frame(self) -> int:
        """Where this dataset's frames start in the file: 0, or a source video's offset in a combined dataset."""
        return int(self.info.get("first_frame", 0))

    def file_block(self, key: str) -> tuple[int, int]:
        """:meth:`block` counted in the whole file's frames (shifted by :attr:`first_frame` in a video's view)."""
        first, end = self.block(key)
        return first + self.first_frame, end + self.first_frame

    @property
    def name(self) -> str:
        """The source video's name (its file name), for reports."""
        return str(self.info.get("name") or Path(str(self.info.get("source", self.dir))).name)

    @property
    def videos(self) -> list[Dataset]:
        """One dataset per source video. A combined dataset (``videos`` in dataset.json) gives a view per video: its
        frames (a slice of the memory map, no copy) and its own dataset.json, blocks and start frame counted from
        the video's first frame; a dataset of one video gives itself."""
        entries = self.info.get(VIDEOS_KEY)
        if entries is None:
            return [self]
        if not isinstance(entries, list) or not entries:
            raise InputError(f"{self.dir / DATASET_FILE} '{VIDEOS_KEY}' must be a non-empty list; "
                             f"run {_PREPARE} again")
        views = []
        for entry in entries:
            try:
                first, count = int(entry["first_frame"]), int(entry["num_frames"])
            except (KeyError, TypeError, ValueError, OverflowError):
                raise InputError(f"{DATASET_FILE} '{VIDEOS_KEY}' entries need first_frame and num_frames") from None
            check_dataset_info(self.dir / DATASET_FILE, entry, f"run {_PREPARE} again")
            if not (0 <= first and count > 0 and first + count <= len(self.frames)):
                raise InputError(f"{DATASET_FILE} video frames [{first}, {first + count}) do not fit "
                                 f"{len(self.frames)} frames; run {_PREPARE} again")
            views.append(Dataset(self.dir, self.frames[first:first + count], entry))
        return views

    def check_trainable(self) -> None:
        """What training needs beyond a readable dataset: a supported size, a train block and a frame rate per video."""
        from videogen.model import SUPPORTED_IMAGE_SIZES

        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise InputError(f"image size {self.image_size} is not supported: use one of {SUPPORTED_IMAGE_SIZES}")
        for video in self.videos:
            video.block("train")
            if not video.fps > 0:
                raise InputError(f"{self.dir / DATASET_FILE} has no valid fps for {video.name}")


# dataset.json fields the stages read, and the JSON types each may have (absent and null are always allowed).
_NUMBER, _INT, _BLOCK, _LIST = "a number >= 0", "a whole number", "[first_pair, end_pair)", "a list"
_DATASET_FIELDS = {"fps": _NUMBER, "start_frame": _INT, "first_frame": _INT, "train": _BLOCK, "val": _BLOCK,
                   "notes": _LIST}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_type(value: Any, kind: str) -> bool:
    if kind == _NUMBER:
        return (_is_int(value) or isinstance(value, float)) and 0 <= value < float("inf")
    if kind == _BLOCK:
        return isinstance(value, list) and len(value) == 2 and all(map(_is_int, value))
    return _is_int(value) if kind == _INT else isinstance(value, list)


def check_dataset_info(path: Path, info: Any, redo: str) -> None:
    """Refuse a dataset.json (or one video's entry of it) whose fields the stages read have another type."""
    if not isinstance(info, dict):
        raise InputError(f"{path} is not a JSON object (or one of its '{VIDEOS_KEY}' entries is not); {redo}")
    for key, kind in _DATASET_FIELDS.items():
        if info.get(key) is not None and not _has_type(info[key], kind):
            raise InputError(f"{path} '{key}' must be {kind}, not {json.dumps(info[key])[:40]}; {redo}")


def open_dataset(dataset_dir: Path) -> Dataset:
    """Open a dataset dir written by the prepare stage, checking ``frames.npy`` against ``dataset.json``.

    Raises:
        InputError: the directory is missing or is not a (complete, consistent) dataset.
    """
    dataset_dir = Path(dataset_dir)
    redo = f"run {_PREPARE} again"
    frames, info = open_frames_dir(dataset_dir, DATASET_FILE, what="dataset directory", damaged_as="dataset",
                                   made_by=_PREPARE, redo=redo)
    check_dataset_info(dataset_dir / DATASET_FILE, info, redo)
    size = info.get("image_size")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[1] != frames.shape[2]:
        raise InputError(f"{dataset_dir / FRAMES_FILE} must hold uint8 frames (N, S, S, 3), got {frames.dtype} "
                         f"{frames.shape}; {redo}")
    if size != frames.shape[1]:
        raise InputError(f"image size mismatch in {dataset_dir}: {DATASET_FILE} says {size}, {FRAMES_FILE} holds "
                         f"{frames.shape[1]} px frames; {redo}")
    if frames.shape[0] != info.get("num_frames"):
        raise InputError(f"dataset {dataset_dir} is inconsistent: {FRAMES_FILE} holds {frames.shape[0]} frames but "
                         f"{DATASET_FILE} says {info.get('num_frames')}; {redo}")
    return Dataset(dataset_dir, frames, info)


@dataclass(frozen=True)
class ModelDir:
    """A model dir written by the train stage: its ``model.json`` content and where the generator files are."""

    dir: Path
    info: dict

    @property
    def generator_path(self) -> Path:
        return self.dir / GENERATOR_FILE

    @property
    def info_path(self) -> Path:
        return self.dir / MODEL_INFO_FILE

    @property
    def savedmodel_dir(self) -> Path:
        return self.dir / SAVEDMODEL_DIR


def open_model_dir(model_dir: Path) -> ModelDir:
    """Open a model dir: both files present and ``model.json`` a JSON object (the generator is loaded elsewhere)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"model dir {model_dir} does not exist: pass the output dir of {_TRAIN}")
    for path in (model_dir / MODEL_INFO_FILE, model_dir / GENERATOR_FILE):
        if not path.is_file():
            raise InputError(f"{path} is missing: {model_dir} is not a trained model dir (run {_TRAIN})")
    info = _read_json_object(model_dir / MODEL_INFO_FILE, f"re-run {_TRAIN}")
    for key in ("image_size", "steps"):  # every model.json the train stage writes has both
        if not _is_int(info.get(key)) or info[key] < 0:
            raise InputError(f"{model_dir / MODEL_INFO_FILE} has no valid '{key}': it is not the model.json "
                             f"{_TRAIN} writes; re-run {_TRAIN}")
    for key, kind in (("context_frames", _INT), ("fps", _NUMBER)):  # read by generate and evaluate when present
        if info.get(key) is not None and not (_has_type(info[key], kind) and (kind != _INT or info[key] >= 1)):
            raise InputError(f"{model_dir / MODEL_INFO_FILE} '{key}' must be {kind}"
                             f"{' >= 1' if kind == _INT else ''}; re-run {_TRAIN}")
    return ModelDir(model_dir, info)


def open_generated(generated_dir: Path) -> tuple[np.ndarray, dict]:
    """Open a generated dir: memory-mapped ``(T, V, S, S, 3)`` uint8 frames and the ``generation.json`` content.

    Raises:
        InputError: the directory is missing, incomplete or inconsistent.
    """
    generated_dir = Path(generated_dir)
    redo = "run the generate stage again"
    frames, info = open_frames_dir(generated_dir, GENERATION_FILE, what="generated directory",
                                   damaged_as="generated directory", made_by=_GENERATE, redo=redo)
    if not isinstance(info, dict):
        raise InputError(f"{generated_dir / GENERATION_FILE} is not a JSON object; {redo}")
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3 or frames.shape[2] != frames.shape[3]:
        raise InputError(f"{generated_dir / FRAMES_FILE} is {frames.dtype} {frames.shape}, expected uint8 "
                         f"(T, V, S, S, 3); {redo}")
    if (info.get("frames"), info.get("num_videos")) != frames.shape[:2]:
        raise InputError(f"{generated_dir / GENERATION_FILE} does not describe {FRAMES_FILE} (it says "
                         f"{info.get('frames')} frames x {info.get('num_videos')} videos, the file holds "
                         f"{frames.shape[0]} x {frames.shape[1]}); {redo}")
    return frames, info
