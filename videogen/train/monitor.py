"""What a training run reports while it runs: progress lines with images/s and ETA, TensorBoard scalars and sample
images under ``logs/``, the loss history, and the steady-state images/s recorded in model.json."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from videogen.train.step import LOSS_NAMES

logger = logging.getLogger("videogen.train")

WARMUP_STEPS = 2  # steps per phase left out of the images/s figure (tracing, first data fetch)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary_scalar(name: str, value: float, step: int) -> None:
    """A TensorBoard scalar through the core op: tensorflow-cpu does not pull in the tensorboard package, whose
    ``tf.summary.scalar`` implementation would otherwise be needed. Same event format and plugin metadata."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                                           data_class=summary_pb2.DATA_CLASS_SCALAR)
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=metadata)


def summary_image(name: str, image_uint8, step: int) -> None:
    """A TensorBoard image (the images plugin's ``[width, height, png]`` string tensor) through the core op."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
                                           data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    height, width = int(image_uint8.shape[0]), int(image_uint8.shape[1])
    tensor = tf.stack([tf.as_string(width), tf.as_string(height), tf.io.encode_png(image_uint8)])
    tf.summary.write(name, tensor, step=step, metadata=metadata)


class Monitor:
    """Progress logs, TensorBoard events and the loss history of one run (``history`` is the checkpointed dict)."""

    def __init__(self, logs_dir: Path, history: dict[str, Any], total: int, batch: int, log_every: int,
                 sample: tuple[np.ndarray, np.ndarray]):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(logs_dir))
        self.history, self.total, self.batch, self.log_every = history, total, batch, log_every
        self.sample_input, self.sample_target = sample
        self.timed_images, self.timed_seconds = 0, 0.0
        self._rate_t0, self._rate_step = time.perf_counter(), 0

    def start_phase(self, name: str, at_step: int) -> dict:
        """Reset the rate clock; returns the phase's running loss sums (kept in the history)."""
        self._rate_t0, self._rate_step = time.perf_counter(), at_step
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
        if current % self.log_every == 0 or current == self.total:
            self._log(phase, current, values)

    def _log(self, phase: str, current: int, values: dict[str, float]) -> None:
        now = time.perf_counter()
        rate = (current - self._rate_step) * self.batch / max(now - self._rate_t0, 1e-9)
        self._rate_t0, self._rate_step = now, current
        eta = (self.total - current) * self.batch / rate if rate > 0 else float("nan")
        logger.info("step %d/%d [%s] gen %.4f (gan %.4f, l1 %.4f) disc %.4f | %.2f img/s | ETA %s", current,
                    self.total, phase, *values.values(), rate, format_duration(eta))
        self.history["points"].append({"step": current, "phase": phase, **{n: round(v, 6) for n, v in values.items()}})
        with self.writer.as_default():
            for name, value in values.items():
                summary_scalar(f"loss/{name}", value, current)
            summary_scalar("images_per_s", rate, current)

    def write_sample(self, generator, at_step: int) -> None:
        """The fixed sample as an input | prediction | target strip."""
        import tensorflow as tf

        from videogen.frames import tf_to_float, tf_to_uint8

        prediction = tf.cast(generator(tf_to_float(self.sample_input), training=False), tf.float32)
        strip = tf.concat([tf_to_float(self.sample_input[..., -3:]), prediction, tf_to_float(self.sample_target)],
                          axis=2)[0]
        with self.writer.as_default():
            summary_image("input_prediction_target", tf_to_uint8(strip), at_step)
        self.writer.flush()

    @property
    def images_per_s(self) -> float | None:
        return self.timed_images / self.timed_seconds if self.timed_seconds > 0 else None

    def close(self) -> None:
        self.writer.close()
