"""Stage "generate": roll a trained next-frame generator out autoregressively from start frames.

Reads a model dir (``generator.keras`` + ``model.json``) and a start: the dataset dir's ``start_frame`` (plus further
validation frames for ``num_videos`` > 1, spread over the source videos of a dataset of several) or a start image. Writes the generated dir (docs/design.md):
``frames.npy`` uint8 ``(T, V, S, S, 3)``, time-major, written as a stream (header first, then frame bytes appended, so
memory stays flat however long the video), and ``generation.json``; with a resume dir, ``progress.json`` there.

The model is loaded once (videogen/generator_io.py) and turned into an inference copy (BatchNorm folded, GroupNorm
fused, bf16 where the hardware computes it natively); each step is one fixed-shape ``tf.function`` that takes the uint8
context window, predicts the next frame, converts it back to uint8 and shifts the window, all in-graph
(``videogen.frames.rollout``), so only uint8 frames cross to the host. Dropout stays on at inference by default, as in
pix2pix (it is the generator's only noise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from videogen import artifacts, hardware, steering
from videogen.artifacts import (
    FRAMES_FILE,
    GENERATION_FILE,
    GENERATOR_FILE,
    MODEL_INFO_FILE,
    PROGRESS_FILE,
    npy_header,
)
from videogen.errors import InputError
from videogen.frames import make_step, rollout, stack_context, unstack_context
from videogen.generator_io import SavedModelGenerator, inference_copy, load_generator
from videogen.hardware import detect_device
from videogen.progress import Progress

# Also the names other code (the CLI, bench, tests) reads from this module; they live in the modules that own them.
__all__ = ["GenerateSettings", "SavedModelGenerator", "choose_start_frames", "choose_video_starts", "detect_device",
           "generate",
           "inference_copy", "load_generator", "load_start_image", "make_step", "npy_header", "rollout",
           "rollout_path"]

log = logging.getLogger("videogen.generate")


@dataclasses.dataclass(frozen=True)
class GenerateSettings:
    """Settings of the generate stage (field names are the CLI flags and component parameters)."""

    frames: int = dataclasses.field(
        default=2000, metadata={"help": "frames to generate per video (the start frame is not counted)"})
    num_videos: int = dataclasses.field(
        default=1, metadata={"help": "K rollouts in one batch from K start frames: the dataset's start_frame, then "
                                     "further validation frames drawn from --seed; with several source videos, "
                                     "rollout j starts in video j mod (number of videos)"})
    fps: float = dataclasses.field(
        default=0.0, metadata={"help": "frame rate recorded for the video; 0 = the model's (source) fps"})
    deterministic: bool = dataclasses.field(
        default=False, metadata={"help": "turn dropout off (by default it stays on as in pix2pix: the only noise)"})
    seed: int = dataclasses.field(
        default=0, metadata={"help": "seed for the dropout noise and the choice of extra start frames"})
    jit_compile: str = dataclasses.field(
        default="auto", metadata={"help": "XLA-compile the rollout step: auto (on GPU only; slower on CPUs), "
                                          "true or false"})
    precision: str = dataclasses.field(
        default="auto", metadata={"help": "auto (bfloat16 on GPUs and on CPUs with AVX512_BF16/AMX, else float32), "
                                          "float32 or bfloat16 (the residual path stays float32; one step differs "
                                          "from float32 by at most 1 uint8 level)"})
    steer: bool = dataclasses.field(
        default=True, metadata={"help": "keep the video's motion, detail and closeness to the clip at the clip's own "
                                        "levels while it feeds on itself (closed-loop; needs the model dir's "
                                        "steering.npz); false = the plain feedback loop"})
    chunk_frames: int = dataclasses.field(
        default=50, metadata={"help": "frames per flushed chunk of the output (and of the resume progress file)"})


# ----------------------------------------------------------------------------------------------------------------------
# Start frames


def load_start_image(path: Path | str, image_size: int) -> np.ndarray:
    """A PNG/JPEG as uint8 ``(S, S, 3)``: center-cropped to a square, resized to ``image_size``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"start image {path} does not exist")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.BICUBIC)
            return np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as err:
        raise InputError(f"start image {path} is too large to open safely ({err}): pass a smaller PNG or JPEG") from err
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"start image {path} could not be read as an image ({err}): pass a PNG or JPEG") from err


def choose_start_frames(dataset_info: dict, num_frames: int, num_videos: int, context_frames: int,
                        seed: int) -> list[int]:
    """Start frame indices: the dataset's ``start_frame`` first, then further validation frames drawn from ``seed``.

    Each start index i needs K-1 earlier frames for its context, so i >= K-1.
    """
    val = dataset_info.get("val") or dataset_info.get("train") or [0, max(num_frames - 1, 1)]
    lo, hi = int(val[0]), min(int(val[1]), num_frames - 1) + 1  # pair i is frame i -> i+1: frames lo..hi-1
    lo = max(lo, context_frames - 1)
    first = int(dataset_info.get("start_frame", lo))
    if not 0 <= first < num_frames or first < context_frames - 1:
        raise InputError(f"{artifacts.DATASET_FILE} start_frame {first} is out of range for {num_frames} frames and "
                         f"{context_frames} context frame(s): re-run prepare")
    candidates = [i for i in range(lo, max(hi, lo + 1)) if i != first and i < num_frames]
    rng = np.random.default_rng(seed)
    extra = num_videos - 1
    if extra <= 0:
        return [first]
    if not candidates:
        candidates = [first]
    picks = rng.choice(candidates, size=extra, replace=extra > len(candidates))
    return [first, *(int(i) for i in picks)]


def choose_video_starts(dataset: artifacts.Dataset, num_videos: int, context_frames: int, seed: int) -> list[int]:
    """Start frames (indices into the dataset's frames) of ``num_videos`` rollouts. Rollout j starts in source video
    j mod V of the V videos, so rollouts begin in different videos where there are several; within a video the
    starts are :func:`choose_start_frames` (its ``start_frame``, then frames of its validation block), so a start's
    context never reaches into the video before it."""
    videos = dataset.videos
    per_video = [choose_start_frames(video.info, len(video.frames), len(range(v, num_videos, len(videos))),
                                     context_frames, seed + v) if v < num_videos else []
                 for v, video in enumerate(videos)]
    return [per_video[j % len(videos)][j // len(videos)] + videos[j % len(videos)].first_frame
            for j in range(num_videos)]


def start_video_names(dataset: artifacts.Dataset, starts: list) -> list[str]:
    """The source video each dataset start frame lies in (by name)."""
    videos = dataset.videos
    return [next((v.name for v in videos if v.first_frame <= int(i) < v.first_frame + len(v.frames)), "")
            for i in starts]


def _start_context(dataset: artifacts.Dataset | None, start_image: Path | None, image_size: int, context_frames: int,
                   num_videos: int, seed: int) -> tuple[np.ndarray, list]:
    """``(context uint8 (V,S,S,3K), start description)``."""
    if start_image is not None:
        img = load_start_image(start_image, image_size)
        context = stack_context(np.stack([img] * context_frames))
        return np.repeat(context[None], num_videos, axis=0), [str(start_image)] * num_videos
    if dataset is None:
        raise InputError("generation needs a start: pass a dataset dir (--dataset) or a start image (--start-image)")
    frames = dataset.frames
    if frames.shape[1:] != (image_size, image_size, 3):
        raise InputError(f"dataset frames are {frames.dtype} {frames.shape} but the model takes {image_size} px: "
                         f"prepare the dataset with --image-size {image_size}")
    starts = choose_video_starts(dataset, num_videos, context_frames, seed)
    context = np.stack([stack_context(frames[i - context_frames + 1:i + 1]) for i in starts])
    return context, starts


def _model_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (GENERATOR_FILE, MODEL_INFO_FILE):
        stat = (model_dir / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------------
# The stage


def rollout_path(model, context: np.ndarray, n: int, context_frames: int, targets: steering.Targets | None, seed: int,
                 deterministic: bool, *, jit_compile: bool = False, steps_done: int = 0,
                 controllers: steering.Controllers | None = None) -> Iterator[np.ndarray]:
    """The generation path every generated frame takes: ``n`` frames uint8 ``(V, S, S, 3)`` from ``context``
    ``(V, S, S, 3K)``, steered toward ``targets`` (fresh controllers seeded with ``seed``, or ``controllers`` carried
    from a resumed run) or, with ``targets`` None, the plain feedback loop. The evaluate stage runs its null controls
    through it too, so that they meet exactly the model's steering."""
    if targets is None:
        return rollout(model, context, n, context_frames, deterministic, seed, jit_compile=jit_compile,
                       steps_done=steps_done)
    controllers = controllers or steering.Controllers(targets, len(context), seed)
    return steering.steered_rollout(model, targets, context, n, context_frames, controllers, deterministic, seed,
                                    jit_compile=jit_compile, steps_done=steps_done)


class _Generation:
    """One generation: the model loaded once, the step, the start context, progress logs."""

    def __init__(self, model_dir: Path, settings: GenerateSettings, dataset_dir: Path | None, start_image: Path | None):
        if settings.frames < 1:
            raise InputError(f"frames must be at least 1, got {settings.frames}")
        if settings.num_videos < 1:
            raise InputError(f"num_videos must be at least 1, got {settings.num_videos}")
        self.settings = settings
        self.model_dir = Path(model_dir)
        self.device, on_gpu = detect_device()
        self.jit = hardware.resolve_jit(settings.jit_compile, on_gpu)
        self.precision = hardware.resolve_precision(settings.precision, on_gpu)
        model, self.model_info = load_generator(self.model_dir)
        self.image_size = int(model.input_shape[1])
        self.context_frames = int(model.input_shape[3]) // 3
        if isinstance(model, SavedModelGenerator):
            # The K80 image: a float32 graph as exported; Kepler has no bf16 and XLA is not worth the risk there.
            self.jit, self.precision, self.model = False, "float32", model
        else:
            self.model = inference_copy(model, self.precision)
        dataset = artifacts.open_dataset(Path(dataset_dir)) if dataset_dir and start_image is None else None
        self.context, self.start_frames = _start_context(
            dataset, Path(start_image) if start_image else None, self.image_size, self.context_frames,
            settings.num_videos, settings.seed)
        self.start_videos = start_video_names(dataset, self.start_frames) if dataset is not None else None
        self.fps = self._fps(dataset_dir)
        self.shape = (settings.frames, settings.num_videos, self.image_size, self.image_size, 3)
        self.targets = steering.load_targets(self.model_dir) if settings.steer else None
        if settings.steer and self.targets is None:
            log.warning("%s has no %s (a model trained by an older version): generating without steering",
                        self.model_dir, steering.STEERING_FILE)
        self.steering_states: dict[int, dict] = {}
        self.controllers = (steering.Controllers(self.targets, settings.num_videos, settings.seed)
                            if self.targets is not None else None)
        log.info("generating %d frames x %d video(s) at %d px on %s (XLA %s, %s, dropout %s, steering %s)",
                 settings.frames, settings.num_videos, self.image_size, self.device, "on" if self.jit else "off",
                 self.precision, "off" if settings.deterministic else "on", "on" if self.controllers else "off")

    def _fps(self, dataset_dir: Path | None) -> float:
        """The frame rate to record: the setting, else the model's (source) fps, else the dataset's, else 25."""
        fps = float(self.settings.fps or self.model_info.get("fps") or 0.0)
        if not fps and dataset_dir is not None:
            try:
                fps = artifacts.open_dataset(Path(dataset_dir)).fps
            except InputError:
                pass
        return fps or 25.0

    def key(self) -> dict:
        """What must match for a partial run to be continued."""
        s = self.settings
        return {"model": _model_fingerprint(self.model_dir), "frames": s.frames, "num_videos": s.num_videos,
                "deterministic": s.deterministic, "seed": s.seed, "precision": self.precision,
                "steer": self.controllers is not None,
                "steer_look": self.controllers.look.name if self.controllers is not None else None,
                "start_frames": self.start_frames, "image_size": self.image_size,
                "context_sha": hashlib.sha256(self.context.tobytes()).hexdigest()[:16]}

    def frames(self, steps_done: int = 0, context: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Yield the remaining frames with progress: a bar, or log lines (frame i/T, frames/s, ETA)."""
        s = self.settings
        total = s.frames
        t0 = last_log = time.perf_counter()
        produced = 0
        ctx = self.context if context is None else context
        progress = Progress(log, "generate", total, unit="frame", initial=steps_done)
        for frame in progress.iterate(self._rollout(ctx, total - steps_done, steps_done)):
            produced += 1
            if self.controllers is not None:  # the state after this frame, for the resume file of its chunk
                self.steering_states[steps_done + produced] = self.controllers.state()
            yield frame
            now = time.perf_counter()
            done = steps_done + produced
            if now - last_log >= 5.0 or done == total:
                rate = produced / (now - t0)
                eta = (total - done) / rate if rate > 0 else float("nan")
                progress.log("frame %d/%d, %.2f frames/s (x%d videos), ETA %.0f s", done, total, rate, s.num_videos,
                             eta, postfix=f"x{s.num_videos} videos")
                last_log = now

    def steering_state(self, done: int) -> dict | None:
        """The controllers' state after frame ``done`` (the rollout may already be a frame ahead); older ones go."""
        if self.controllers is None:
            return None
        state = self.steering_states.get(done, self.controllers.state())
        self.steering_states = {k: v for k, v in self.steering_states.items() if k > done}
        return state

    def _rollout(self, context: np.ndarray, n: int, steps_done: int) -> Iterator[np.ndarray]:
        s = self.settings
        return rollout_path(self.model, context, n, self.context_frames, self.targets, s.seed, s.deterministic,
                            jit_compile=self.jit, steps_done=steps_done, controllers=self.controllers)

    def info(self, duration_s: float, produced: int) -> dict:
        s = self.settings
        return {"frames": s.frames, "num_videos": s.num_videos, "fps": self.fps, "image_size": self.image_size,
                "context_frames": self.context_frames, "start_frames": self.start_frames,
                "start_videos": self.start_videos, "deterministic": s.deterministic, "seed": s.seed,
                "device": self.device, "jit_compile": self.jit,
                "steering": self.controllers.state() if self.controllers is not None else None,
                "precision": self.precision, "frames_per_s": round(produced / duration_s, 3) if duration_s > 0 else None,
                "total_frames_per_s": round(produced * s.num_videos / duration_s, 3) if duration_s > 0 else None,
                "duration_s": round(duration_s, 3), "settings": dataclasses.asdict(s)}


@dataclasses.dataclass
class _Resume:
    """Where a generation starts: frames already done, the context after them, and the seconds they took."""

    steps_done: int = 0
    context: np.ndarray | None = None
    previous_s: float = 0.0


def _read_progress(path: Path) -> dict:
    try:
        progress = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return progress if isinstance(progress, dict) else {}


def _resume_point(gen: _Generation, work_dir: Path, key: dict) -> _Resume:
    """Continue a partial run with the same key found in ``work_dir``, from its last complete flushed frame."""
    frames_path, progress_path = work_dir / FRAMES_FILE, work_dir / PROGRESS_FILE
    if not (progress_path.is_file() and frames_path.is_file()):
        return _Resume()
    progress = _read_progress(progress_path)
    done = int(progress.get("frames_done", 0))
    if progress.get("key") != key or done <= 0 or artifacts.frames_written(frames_path, gen.shape) < done:
        if progress:
            log.info("partial generation in %s has other settings: starting over", work_dir)
        return _Resume()
    steps_done = min(done, gen.settings.frames)
    if gen.controllers is not None:
        try:
            gen.controllers.restore(progress["steering"])
        except (KeyError, TypeError, ValueError):
            log.info("partial generation in %s has no usable steering state: starting over", work_dir)
            return _Resume()
    k = gen.context_frames
    recent = artifacts.read_frames_at(frames_path, gen.shape, max(0, steps_done - k), steps_done)
    # Fewer generated frames than the context: the start context supplies the rest.
    recent = (unstack_context(gen.context, k) + recent)[-k:]
    log.info("resumed at frame %d/%d from %s", steps_done, gen.settings.frames, work_dir)
    return _Resume(steps_done, np.ascontiguousarray(np.concatenate(recent, axis=-1)),
                   float(progress.get("duration_s", 0.0)))


def _write_frames(gen: _Generation, work_dir: Path, resume: _Resume, key: dict | None) -> float:
    """Stream the remaining frames into ``work_dir/frames.npy``; returns the seconds taken. With a ``key`` (a resume
    dir), ``progress.json`` is updated after each flushed chunk."""
    t0 = time.perf_counter()

    def on_flush(done: int) -> None:
        if key is not None:
            artifacts.atomic_write_json(work_dir / PROGRESS_FILE, {
                "key": key, "frames_done": done, "duration_s": resume.previous_s + time.perf_counter() - t0,
                "steering": gen.steering_state(done)}, sort_keys=True)

    if resume.steps_done < gen.settings.frames:
        writer = artifacts.StreamWriter(work_dir / FRAMES_FILE, gen.shape, resume.steps_done,
                                        gen.settings.chunk_frames, on_flush)
        try:
            for frame in gen.frames(resume.steps_done, resume.context):
                writer.put(frame)
        finally:
            writer.close()
    return time.perf_counter() - t0


def generate(model_dir: Path, output_dir: Path, settings: GenerateSettings, *, dataset_dir: Path | None = None,
             start_image: Path | None = None, resume_dir: Path | None = None) -> dict:
    """Generate ``settings.frames`` frames for each of ``settings.num_videos`` videos into a generated dir.

    Args:
        model_dir: output of the train stage.
        output_dir: the generated dir to write (``frames.npy``, ``generation.json``).
        settings: see :class:`GenerateSettings`.
        dataset_dir: start from the dataset's ``start_frame`` (and further validation frames).
        start_image: or start from this image (center-cropped, resized; repeated for K context frames).
        resume_dir: a dir that outlives the task (not its outputs): frames are written there with ``progress.json``
            updated after each flushed chunk; a partial run with the same settings found there is continued from its
            last complete frame ("resumed at frame N") instead of starting over.

    Returns:
        The ``generation.json`` content.
    """
    gen = _Generation(model_dir, settings, dataset_dir, start_image)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(resume_dir) if resume_dir else output_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    key = gen.key() if resume_dir else None
    resume = _resume_point(gen, work_dir, key) if resume_dir else _Resume()
    duration = _write_frames(gen, work_dir, resume, key)
    info = gen.info(duration, settings.frames - resume.steps_done)
    info["resumed_at_frame"] = resume.steps_done
    info["duration_s"] = round(resume.previous_s + duration, 3)
    if work_dir != output_dir:
        artifacts.move_file(work_dir / FRAMES_FILE, output_dir / FRAMES_FILE)
        (work_dir / PROGRESS_FILE).unlink(missing_ok=True)
    artifacts.atomic_write_json(output_dir / GENERATION_FILE, info, sort_keys=True)
    log.info("wrote %s (%d frames x %d videos, %.2f frames/s on %s)", output_dir / FRAMES_FILE, settings.frames,
             settings.num_videos, info["frames_per_s"] or 0.0, gen.device)
    return info
