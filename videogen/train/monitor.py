"""What a training run reports while it runs: progress (a live bar on a terminal, else log lines) with images/s and
ETA, TensorBoard scalars and sample images under ``logs/`` (``tf.summary``; ``videogen tensorboard`` serves them),
the loss history, and the steady-state images/s recorded in model.json."""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from videogen.errors import InputError, VideogenError
from videogen.progress import Progress
from videogen.train.step import LOSS_NAMES

logger = logging.getLogger("videogen.train")

WARMUP_STEPS = 2  # steps per phase left out of the images/s figure (tracing, first data fetch)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


# Shown under the charts in TensorBoard.
DESCRIPTIONS = {
    "loss/gen_total": "generator loss: gan_weight * loss/gen_gan + l1_weight * loss/gen_l1",
    "loss/gen_gan": "generator's adversarial loss (cross-entropy of the discriminator's verdict on its frames)",
    "loss/gen_l1": "mean absolute error of the predicted next frame, pixels in [-1, 1]",
    "loss/disc": "discriminator loss: half the cross-entropy on real pairs plus on generated pairs",
    "images_per_s": "training images per second since the previous log line (batch_size * steps / seconds)",
    "input_prediction_target": "fixed sample at each checkpoint: newest input frame | predicted next frame | real "
                               "next frame",
}


class Monitor:
    """Progress logs, TensorBoard events and the loss history of one run (``history`` is the checkpointed dict)."""

    def __init__(self, logs_dir: Path, history: dict[str, Any], total: int, batch: int, log_every: int,
                 sample: tuple[np.ndarray, np.ndarray]):
        import tensorflow as tf

        require_tensorboard()  # tf.summary.scalar and .image live in it
        self.writer = tf.summary.create_file_writer(str(logs_dir))
        self.history, self.total, self.batch, self.log_every = history, total, batch, log_every
        self.sample_input, self.sample_target = sample
        self.timed_images, self.timed_seconds = 0, 0.0
        self._rate_t0, self._rate_step = time.perf_counter(), 0
        self.progress: Progress | None = None  # opened by the first start_phase

    def start_phase(self, name: str, at_step: int) -> dict:
        """Reset the rate clock; returns the phase's running loss sums (kept in the history)."""
        self._rate_t0, self._rate_step = time.perf_counter(), at_step
        if self.progress is None:  # from the step the run starts at (a resumed run's counts on from there)
            self.progress = Progress(logger, "train", self.total, unit="step", initial=at_step)
        return self.history["phase_sums"].setdefault(name, {"steps": 0, **{n: 0.0 for n in LOSS_NAMES}})

    def step_done(self, phase: str, sums: dict, current: int, losses: list[float], elapsed: float,
                  steps_in_phase: int) -> None:
        """Account one finished step: timing, finiteness, phase sums and, every ``log_every`` steps, a log line."""
        if steps_in_phase > WARMUP_STEPS:
            self.timed_images += self.batch
            self.timed_seconds += elapsed
        values = dict(zip(LOSS_NAMES, losses))
        if not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"non-finite loss at step {current}: {values}")
        sums["steps"] += 1
        for name, value in values.items():
            sums[name] += value
        sums["final"] = values
        self.progress.update(current)
        if current % self.log_every == 0 or current == self.total:
            self._log(phase, current, values)

    def _log(self, phase: str, current: int, values: dict[str, float]) -> None:
        now = time.perf_counter()
        rate = (current - self._rate_step) * self.batch / max(now - self._rate_t0, 1e-9)
        self._rate_t0, self._rate_step = now, current
        eta = (self.total - current) * self.batch / rate if rate > 0 else float("nan")
        line = ("step %d/%d [%s] gen %.4f (gan %.4f, l1 %.4f) disc %.4f | %.2f img/s | ETA %s", current, self.total,
                phase, *values.values(), rate, format_duration(eta))
        # On a bar, which shows the step, steps/s and ETA itself: the phase, losses and images/s.
        gen, gan, l1, disc = values.values()
        self.progress.log(*line, postfix=f"{phase} | gen {gen:.4f} (gan {gan:.4f}, l1 {l1:.4f}) disc {disc:.4f} | "
                                          f"{rate:.2f} img/s")
        self.history["points"].append({"step": current, "phase": phase, **{n: round(v, 6) for n, v in values.items()}})
        with self.writer.as_default():
            for name, value in values.items():
                _scalar(f"loss/{name}", value, current)
            _scalar("images_per_s", rate, current)

    def write_sample(self, generator, at_step: int) -> None:
        """The fixed sample as an input | prediction | target strip."""
        import tensorflow as tf

        from videogen.frames import tf_to_float, tf_to_uint8

        prediction = tf.cast(generator(tf_to_float(self.sample_input), training=False), tf.float32)
        strip = tf.concat([tf_to_float(self.sample_input[..., -3:]), prediction, tf_to_float(self.sample_target)],
                          axis=2)[0]
        with self.writer.as_default():
            name = "input_prediction_target"
            tf.summary.image(name, tf_to_uint8(strip)[None], step=at_step, description=DESCRIPTIONS[name])
        self.writer.flush()

    @property
    def images_per_s(self) -> float | None:
        return self.timed_images / self.timed_seconds if self.timed_seconds > 0 else None

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.writer.close()


def _scalar(name: str, value: float, step: int) -> None:
    import tensorflow as tf

    tf.summary.scalar(name, value, step=step, description=DESCRIPTIONS[name])


# ------------------------------------------------------------------------------------------- opening the logs
EVENTS_PREFIX = "events.out.tfevents."


def require_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise VideogenError("the tensorboard package is missing (tensorflow-cpu does not bring it): "
                            "pip install tensorboard")


def tensorboard_logdir(model: str, scratch: Path) -> Path:
    """The local directory TensorBoard reads for ``model``: a model dir's ``logs/``, or, without one, the dir itself
    when event files lie below it (a logs dir, or a folder of several runs: TensorBoard shows each subfolder as a run).
    For an ``s3://`` / ``minio://`` URI the same event files are downloaded into ``scratch`` first."""
    from videogen import storage
    from videogen.artifacts import LOGS_DIR

    events = [name for name in storage.list_dir(model) if name.rsplit("/", 1)[-1].startswith(EVENTS_PREFIX)]
    if not events:
        raise InputError(f"no TensorBoard event files under {model}: expected {LOGS_DIR}/{EVENTS_PREFIX}* in a model "
                         "directory made by `videogen train` (or its s3:// / minio:// URI)")
    in_logs = [name for name in events if name.startswith(f"{LOGS_DIR}/")]
    subdir = LOGS_DIR if in_logs else ""
    if not storage.is_remote(model):
        return Path(model) / subdir
    storage.download_dir(model, scratch, files=in_logs or events)
    return scratch / subdir


def tensorboard_argv(logdir: Path, host: str = "127.0.0.1", port: int = 6006) -> list[str]:
    """The command that serves ``logdir`` (port 0: one the system picks); this interpreter's TensorBoard."""
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host, "--port", str(port)]
