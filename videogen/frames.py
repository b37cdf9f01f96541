"""Frames as the generator sees them, and the one autoregressive rollout.

Frames are stored as uint8; the generator takes and returns float in [-1, 1]. Its input is the last K frames stacked
on channels, oldest first: ``(S, S, 3K)``. :func:`rollout` feeds a generator its own uint8-rounded predictions; the
train stage (refinement pairs), the evaluate stage (rollout quality) and the generate stage (the video) all use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_SCALE = 127.5


# ------------------------------------------------------------------------------------------------------- conversion
def tf_to_float(frames):
    """uint8 frames -> float32 in [-1, 1] (TensorFlow, in-graph)."""
    import tensorflow as tf

    return tf.cast(frames, tf.float32) * (1.0 / _SCALE) - 1.0


def tf_to_uint8(images):
    """Float images in [-1, 1] -> uint8, rounded half to even and clipped (TensorFlow, in-graph)."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * _SCALE), 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------------------------------------------------- context
def context_indices(last: int, first_allowed: int, context_frames: int) -> list[int]:
    """Frame indices of the K-frame context ending at frame ``last``, oldest first, clamped at ``first_allowed``
    (the start of the block: the first frames repeat instead of reaching outside it)."""
    return [max(first_allowed, last - context_frames + 1 + k) for k in range(context_frames)]


def stack_context(frames: np.ndarray) -> np.ndarray:
    """K frames on channels, oldest first: ``(..., K, S, S, C) -> (..., S, S, K*C)`` (model.py's convention)."""
    frames = np.asarray(frames)
    *lead, k, s, w, c = frames.shape
    moved = np.moveaxis(frames, -4, -2)  # (..., S, S, K, C)
    return np.ascontiguousarray(moved.reshape(*lead, s, w, k * c))


def unstack_context(context: np.ndarray, context_frames: int) -> list[np.ndarray]:
    """``(..., S, S, 3K) -> K`` arrays ``(..., S, S, 3)``, oldest first."""
    return [context[..., 3 * i:3 * i + 3] for i in range(context_frames)]


# ---------------------------------------------------------------------------------------------------------- rollout
def make_step(model, context_frames: int, deterministic: bool, jit_compile: bool = False):
    """The fixed-shape rollout step: ``(context uint8 (V,S,S,3K)) -> (next context, frame uint8 (V,S,S,3))``.

    uint8 -> [-1, 1] float and back happen in-graph, so the host only ever holds uint8 frames.
    """
    import tensorflow as tf

    training = not deterministic

    def step(context):
        frame = tf_to_uint8(model(tf_to_float(context), training=training))
        context = tf.concat([context[..., 3:], frame], axis=-1) if context_frames > 1 else frame
        return context, frame

    return tf.function(step, jit_compile=jit_compile, reduce_retracing=False)


def rollout(model, start_frames_uint8: np.ndarray, n: int, context_frames: int = 1, deterministic: bool = False,
            seed: int = 0, *, jit_compile: bool = False, steps_done: int = 0, step_fn=None) -> Iterator[np.ndarray]:
    """Autoregressive rollout: yield ``n`` predicted frames, uint8 ``(V, S, S, 3)`` each.

    Args:
        model: a generator. With dropout on (not ``deterministic``), BatchNorm layers are frozen so that they keep
            running on their moving statistics; ``videogen.generator_io.inference_copy`` makes the fast copy.
        start_frames_uint8: ``(V, S, S, 3K)`` (the last K frames of each video stacked oldest first on channels).
        n: frames to produce.
        context_frames: K.
        deterministic: dropout off (``training=False``; the model is not touched).
        seed: dropout noise seed (same seed, same frames).
        jit_compile: XLA-compile the step.
        steps_done: frames already produced earlier by the same rollout (resume): the noise continues from there.
        step_fn: a step from :func:`make_step` to reuse (skips retracing).
    """
    import tensorflow as tf

    start = np.asarray(start_frames_uint8)
    if start.dtype != np.uint8 or start.ndim != 4 or start.shape[-1] != 3 * context_frames:
        raise ValueError(f"start frames must be uint8 (V, S, S, {3 * context_frames}), got {start.dtype} {start.shape}")
    if not deterministic:
        freeze_batchnorm(model)
        seed_dropout(model, seed, steps_done)
    step = step_fn or make_step(model, context_frames, deterministic, jit_compile)
    context = tf.constant(start)
    for _ in range(n):
        context, frame = step(context)
        yield frame.numpy()


def rollout_batches(model, contexts: np.ndarray, n: int, batch_size: int,
                    step_fn=None) -> Iterator[tuple[slice, np.ndarray]]:
    """Deterministic rollouts of many contexts ``(B, K, S, S, 3)``, ``batch_size`` at a time (one compiled step,
    ``step_fn`` if given).

    Yields ``(rows, frames)``: the slice of ``contexts`` and their ``n`` predicted frames ``(n, rows, S, S, 3)``.
    """
    contexts = np.asarray(contexts, dtype=np.uint8)
    k = contexts.shape[1]
    step = step_fn or make_step(model, k, deterministic=True)
    for first in range(0, len(contexts), batch_size):
        rows = slice(first, min(first + batch_size, len(contexts)))
        frames = list(rollout(model, stack_context(contexts[rows]), n, k, deterministic=True, step_fn=step))
        yield rows, np.stack(frames) if frames else np.zeros((0, rows.stop - rows.start, *contexts.shape[2:]),
                                                             np.uint8)


def rollout_all(model, contexts: np.ndarray, n: int, batch_size: int, step_fn=None) -> np.ndarray:
    """``n`` deterministic predicted frames ``(n, B, S, S, 3)`` from contexts ``(B, K, S, S, 3)``, oldest first."""
    parts = [frames for _, frames in rollout_batches(model, contexts, n, batch_size, step_fn)]
    if not parts:
        return np.zeros((n, 0, *np.asarray(contexts).shape[2:]), np.uint8)
    return np.concatenate(parts, axis=1)


def freeze_batchnorm(model) -> None:
    """Keras 3 runs BatchNormalization on its moving statistics when ``trainable`` is False, even under
    ``training=True`` (``if training and self.trainable``), so dropout can be on while BN stays in inference mode."""
    import keras

    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def seed_dropout(model, seed: int, steps_done: int) -> None:
    """Put every Dropout layer's seed generator at the state it has after ``steps_done`` steps from ``seed``.

    Each Dropout draws one seed per call ([layer_seed, counter], the counter advancing by 1), so a resumed rollout
    continues with exactly the noise an uninterrupted one would have drawn.
    """
    import keras

    dropouts = [layer for layer in getattr(model, "layers", []) if isinstance(layer, keras.layers.Dropout)]
    for index, layer in enumerate(dropouts):
        layer_seed = (seed * 1000003 + index * 7919 + 1) % (2**31 - 1)
        layer.seed_generator.state.assign(np.array([layer_seed, steps_done], dtype=np.uint32).astype(
            layer.seed_generator.state.dtype))
