"""Stage "train": fit pix2pix (U-Net generator + PatchGAN discriminator) to predict the next frame of a video.

Reads a dataset dir made by the prepare stage (``frames.npy`` uint8 ``(N, S, S, 3)``, memory-mapped, and
``dataset.json``). Writes a model dir: ``generator.keras`` (input ``(B, S, S, 3K)`` float32 in [-1, 1], output
``(B, S, S, 3)``), ``model.json`` (sizes, steps, settings, loss history, measured images/s), TensorBoard event files
under ``logs/`` and, unless another checkpoint dir is given, ``checkpoints/``.

Training runs in phases defined by step ranges, so ``max_steps`` is the total of all of them and a resumed run knows
where it is from the step counter alone:

1. ``[0, main_end)``: real pairs (frames i-K+1..i -> frame i+1) with the paper's random jitter.
2. ``refine_rounds`` rounds that share ``refine_fraction`` of the budget: at the start of each round the current
   generator (dropout off) is rolled out ``rollout_length`` steps from random training frames, and training goes on
   with (predicted frames -> real next frame) pairs mixed with real pairs (issue 5; the anti-divergence idea of
   Magenta's next_frame_prediction_pix2pix, but the rollouts are fed back from the model itself, several steps deep,
   and refreshed each round).

Checkpoints (step, both models, both optimizers) are saved every ``checkpoint_every`` steps and at the end; a new run
with the same dirs restores the latest and continues to the same total (issue 6). Importing this module does not
import TensorFlow: the CLI reads ``TrainSettings`` from it cheaply.

Several GPUs (issue 4): with more than one GPU visible (``devices=auto``) the step runs data-parallel under
``tf.distribute.MirroredStrategy``: ``batch_size`` is the GLOBAL batch, split across the replicas, each loss is the mean
over the global batch (each replica's mean weighted by its share of it), so the gradients and the step equal those of
one device at the same batch and the learning rate needs no scaling. Batch norm layers (the discriminator's, and the
generator's with norm=batch) use each replica's share of the batch for their statistics, as Keras does by default
(synchronized batch norm failed here: its all-reduces ran in different orders on the replicas); GroupNorm, the
generator's default, is per image and unaffected. One device keeps the plain step (no strategy at all).
Checkpoints hold one copy of each variable, so a run resumes on another number of devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videogen.errors import InputError

logger = logging.getLogger("videogen.train")

_JITTER_SCALE = 1.12  # the paper's 256 -> 286 resize before the random 256 crop
_HISTORY_FILE = "history.json"  # loss history kept beside the checkpoints so that a resumed run keeps its curves
_WARMUP_STEPS = 2  # steps per phase left out of the images/s figure (tracing, first data fetch)


@dataclass(frozen=True)
class TrainSettings:
    """Settings of the train stage. Field names are the CLI flags and the component parameters."""

    max_epoch: int = field(default=20, metadata={
        "help": "passes over the training pairs (used only when --max-steps is 0)"})
    max_steps: int = field(default=0, metadata={
        "help": "total training steps, refinement included; 0 = derive from --max-epoch. If both are set, "
                "--max-steps wins"})
    batch_size: int = field(default=16, metadata={
        "help": "images per step (the seed's 16); clamped with a warning to the number of training pairs"})
    l1_weight: float = field(default=100.0, metadata={
        "help": "weight of the L1 term in the generator loss (the paper's 100; the seed used 1)"})
    gan_weight: float = field(default=0.1, metadata={
        "help": "weight of the GAN term in the generator loss (the paper's 1; 0.1 measured best on real clips, "
                "docs/quality.md: 1 loses to copying, 0 freezes long generations)"})
    ngf: int = field(default=64, metadata={"help": "generator filters in the first layer"})
    ndf: int = field(default=64, metadata={"help": "discriminator filters in the first layer"})
    learning_rate: float = field(default=2e-4, metadata={"help": "Adam learning rate (both networks)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta_1 (both networks)"})
    checkpoint_every: int = field(default=500, metadata={
        "help": "save a checkpoint every N steps (and at the end); a restart loses at most this many steps"})
    log_every: int = field(default=50, metadata={
        "help": "log a progress line, TensorBoard scalars and a loss-history point every N steps"})
    seed: int = field(default=0, metadata={"help": "seed for weights, shuffling, jitter and rollout starts"})
    context_frames: int = field(default=2, metadata={
        "help": "K: how many past frames the generator sees, stacked on channels. 1 is the seed's behaviour, but with "
                "the paper's random mirror jitter one frame cannot tell which way things move, so a K=1 model learns "
                "to copy; 2 sees velocity (docs/quality.md)"})
    residual: bool = field(default=True, metadata={
        "help": "predict the change from the last frame (an untrained model copies the last frame); "
                "false = the paper's plain tanh output"})
    norm: str = field(default="group", metadata={
        "help": "generator normalization: group (GroupNorm, the default: per-image statistics, the same in training "
                "and inference; measured better than batch, docs/quality.md) or batch (the paper's BatchNorm)"})
    dropout: float = field(default=0.5, metadata={
        "help": "dropout rate in the generator's three innermost decoder blocks (the paper's 0.5; the noise of a "
                "non-deterministic generation); 0 = none"})
    refine_rounds: int = field(default=0, metadata={
        "help": "anti-divergence rounds after the main phase: roll the model out and train on its own predictions "
                "(0 = off, the default: 1 and 2 measured worse one-step and at 5/10 steps on real clips, "
                "docs/quality.md)"})
    refine_fraction: float = field(default=0.2, metadata={
        "help": "share of the total steps spent in the refine rounds, split evenly between them"})
    rollout_length: int = field(default=3, metadata={
        "help": "predicted steps per rollout when building refinement pairs"})
    rollout_starts: int = field(default=64, metadata={
        "help": "random training frames rolled out per refine round"})
    refine_mix: float = field(default=0.5, metadata={
        "help": "share of each refinement batch drawn from rollout pairs (the rest are real pairs)"})
    input_noise: float = field(default=0.0, metadata={
        "help": "std of Gaussian noise added to the generator's input frames (in [-1, 1] units; 0 = off)"})
    jit_compile: str = field(default="auto", metadata={
        "help": "XLA-compile the train step: auto (on for one GPU; off for CPU, where it measured slower, and for "
                "several GPUs, where XLA under MirroredStrategy is untested: true turns it on there), true, false"})
    precision: str = field(default="auto", metadata={
        "help": "compute precision: auto (bfloat16 mixed precision where the hardware has native bf16: GPUs of "
                "compute capability 8.0 or newer, CPUs with AVX512_BF16 or AMX; else float32), float32, or bfloat16. "
                "On the 2-core AVX512_BF16 CPU bf16 trained 1.28x (batch 1) to 1.68x (batch 16) faster at 256 px with "
                "the same PSNR within run-to-run variation (3 seeds). Variables, losses and the exported generator stay float32"})
    devices: str = field(default="auto", metadata={
        "help": "devices to train on: auto (data-parallel tf.distribute.MirroredStrategy over all GPUs when more than "
                "one is visible, else the default device with no strategy), single (the default device only), gpu "
                "(MirroredStrategy over all GPUs), gpu:N or cpu:N (over the first N logical GPUs or CPUs; cpu:N needs "
                "N logical CPU devices configured, for tests), or comma-separated device names (/gpu:0,/gpu:2). "
                "--batch-size is the global batch, split across the devices; the learning rate needs no scaling "
                "(losses are means over the global batch)"})

    @property
    def refine_steps_fraction(self) -> float:
        return self.refine_fraction if self.refine_rounds > 0 else 0.0


def validate_settings(settings: TrainSettings) -> None:
    """Raise InputError (one line) for a settings value that cannot work."""
    s = settings
    checks = [
        (s.batch_size >= 1, f"batch_size must be >= 1, got {s.batch_size}"),
        (s.max_steps >= 0, f"max_steps must be >= 0, got {s.max_steps}"),
        (s.max_epoch >= 0, f"max_epoch must be >= 0, got {s.max_epoch}"),
        (s.max_steps > 0 or s.max_epoch > 0, "set max_steps or max_epoch to a positive number"),
        (s.ngf >= 1 and s.ndf >= 1, f"ngf and ndf must be >= 1, got {s.ngf} and {s.ndf}"),
        (s.learning_rate > 0, f"learning_rate must be > 0, got {s.learning_rate}"),
        (0 <= s.beta1 < 1, f"beta1 must be in [0, 1), got {s.beta1}"),
        (s.l1_weight >= 0 and s.gan_weight >= 0, "l1_weight and gan_weight must be >= 0"),
        (s.l1_weight > 0 or s.gan_weight > 0, "l1_weight and gan_weight cannot both be 0"),
        (s.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {s.checkpoint_every}"),
        (s.log_every >= 1, f"log_every must be >= 1, got {s.log_every}"),
        (s.context_frames >= 1, f"context_frames must be >= 1, got {s.context_frames}"),
        (s.refine_rounds >= 0, f"refine_rounds must be >= 0, got {s.refine_rounds}"),
        (0 <= s.refine_fraction < 1, f"refine_fraction must be in [0, 1), got {s.refine_fraction}"),
        (s.rollout_length >= 1, f"rollout_length must be >= 1, got {s.rollout_length}"),
        (s.rollout_starts >= 1, f"rollout_starts must be >= 1, got {s.rollout_starts}"),
        (0 <= s.refine_mix <= 1, f"refine_mix must be in [0, 1], got {s.refine_mix}"),
        (s.input_noise >= 0, f"input_noise must be >= 0, got {s.input_noise}"),
        (s.norm in ("batch", "group"), f"norm must be batch or group, got {s.norm!r}"),
        (0 <= s.dropout < 1, f"dropout must be in [0, 1), got {s.dropout}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(f"invalid train setting: {message}")
    _resolve_jit(s.jit_compile, gpu=False)  # validates the spelling
    _resolve_precision(s.precision, gpu=False)
    _parse_devices(s.devices)


def _parse_devices(value: Any) -> tuple[str, Any]:
    """Read the ``devices`` setting without TensorFlow: ``("auto", None)``, ``("single", None)``,
    ``("count", (kind, n or None for all))`` or ``("names", [device names])``. A list or tuple of names also works."""
    if isinstance(value, (list, tuple)):
        names = [str(v).strip() for v in value if str(v).strip()]
        if names:
            return "names", names
    else:
        text = str(value).strip()
        low = text.lower()
        if low == "auto":
            return "auto", None
        if low in ("single", "default", "one"):
            return "single", None
        if low in ("gpu", "gpus", "all"):
            return "count", ("GPU", None)
        match = re.fullmatch(r"(cpu|gpu):(\d+)", low)
        if match and int(match.group(2)) >= 1:
            return "count", (match.group(1).upper(), int(match.group(2)))
        if text.startswith("/"):
            return "names", [part.strip() for part in text.split(",") if part.strip()]
    raise InputError(f"invalid train setting: devices must be auto, single, gpu, gpu:N, cpu:N (N >= 1) or "
                     f"comma-separated device names starting with /, got {value!r}")


def _resolve_devices(value: Any, batch_size: int) -> list[str] | None:
    """Device names for MirroredStrategy, or None for the plain single-device step (no strategy)."""
    import tensorflow as tf

    mode, arg = _parse_devices(value)
    if mode == "single":
        return None
    if mode == "auto":
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(gpus) > batch_size:
            logger.warning("batch size %d is smaller than the %d GPUs: training on %d of them", batch_size, len(gpus),
                           batch_size)
            gpus = gpus[:batch_size]
        return gpus if len(gpus) > 1 else None
    if mode == "count":
        kind, count = arg
        available = [d.name for d in tf.config.list_logical_devices(kind)]
        count = count or len(available)
        if not available or count > len(available):
            raise InputError(f"invalid train setting: devices={value!r} asks for {count or 1} {kind} devices, but "
                             f"{len(available)} are visible")
        names = available[:count]
    else:
        names = arg
    if batch_size < len(names):
        raise InputError(f"invalid train setting: batch_size {batch_size} is smaller than the {len(names)} devices of "
                         f"devices={value!r} (the batch is the global batch, split across them)")
    return names


def _gpu_supports_bf16() -> bool:
    import tensorflow as tf

    for device in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(device).get("compute_capability", (0, 0))
        if tuple(capability) < (8, 0):
            return False
    return bool(tf.config.list_physical_devices("GPU"))


def _resolve_precision(value: Any, gpu: bool) -> str:
    """Keras dtype policy for training. "auto": mixed bfloat16 where the hardware computes bf16 natively (GPUs of
    compute capability 8+, CPUs with AVX512_BF16 or AMX), float32 elsewhere.

    Speed, 2-core AMD EPYC (AVX512_BF16), 256 px ngf 64, `make bench`: bf16 1.28x float32 at batch 1 and 1.68x at
    batch 16. Quality, bikes.mp4 64 px, 1200 steps, seeds 0-2 (bench/quality/results.jsonl, prec_*): one-step PSNR
    bf16 33.26/33.58/33.83 vs float32 33.32/33.38/33.60 dB, 10-step 18.42/19.89/19.16 vs 19.52/19.21/19.41 dB: the
    same within run-to-run variation (an earlier two-seed comparison that favoured float32 was within it too)."""
    text = str(value).strip().lower()
    if text == "auto":
        from videogen.hardware import cpu_has_bf16 as _cpu_has_bf16

        native = _gpu_supports_bf16() if gpu else _cpu_has_bf16()
        return "mixed_bfloat16" if native else "float32"
    if text in ("float32", "fp32"):
        return "float32"
    if text in ("bfloat16", "bf16", "mixed_bfloat16"):
        return "mixed_bfloat16"
    raise InputError(f"invalid train setting: precision must be auto, float32 or bfloat16, got {value!r}")


def _resolve_jit(value: Any, gpu: bool) -> bool:
    """The same switch as generation's ("auto" = on for GPUs only). Measured on the 2-core CPU (128 px, ngf 64,
    batch 1): XLA made the train step 0.79x, see make_train_step."""
    from videogen.hardware import resolve_jit

    try:
        return resolve_jit(value, gpu)
    except InputError as error:
        raise InputError(f"invalid train setting: {error}") from None


# ----------------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------------

def _read_dataset(dataset_dir: Path) -> tuple[np.ndarray, dict]:
    """Memory-map ``frames.npy`` and read ``dataset.json``, checking them against each other (contract in design.md)."""
    from videogen.model import SUPPORTED_IMAGE_SIZES

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise InputError(f"dataset dir {dataset_dir} does not exist: run `videogen prepare` first")
    frames_path, info_path = dataset_dir / "frames.npy", dataset_dir / "dataset.json"
    for path in (frames_path, info_path):
        if not path.is_file():
            raise InputError(f"{path} is missing: {dataset_dir} is not a dataset dir made by `videogen prepare`")
    try:
        info = json.loads(info_path.read_text())
        frames = np.load(frames_path, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise InputError(f"cannot read dataset in {dataset_dir}: {error}") from error
    if not isinstance(info, dict):
        raise InputError(f"{info_path} is not a JSON object")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[1] != frames.shape[2]:
        raise InputError(f"{frames_path} must hold uint8 frames (N, S, S, 3), got {frames.dtype} {frames.shape}")
    size = frames.shape[1]
    if info.get("image_size") != size:
        raise InputError(f"image size mismatch in {dataset_dir}: dataset.json says {info.get('image_size')}, "
                         f"frames.npy holds {size} px frames")
    if size not in SUPPORTED_IMAGE_SIZES:
        raise InputError(f"image size {size} is not supported: use one of {SUPPORTED_IMAGE_SIZES}")
    try:
        first, end = (int(v) for v in info["train"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{info_path} has no valid train range [first_pair, end_pair)") from error
    if not 0 <= first < end <= len(frames) - 1:
        raise InputError(f"train pairs [{first}, {end}) do not fit {len(frames)} frames in {dataset_dir}")
    if not float(info.get("fps") or 0) > 0:
        raise InputError(f"{info_path} has no valid fps")
    return frames, info


def _context_indices(pair: int, first_pair: int, context_frames: int) -> list[int]:
    """Frame indices of the generator input for pair ``pair``, oldest first, clamped at the start of the block."""
    return [max(first_pair, pair - context_frames + 1 + k) for k in range(context_frames)]


def _stack_frames(frames: np.ndarray) -> np.ndarray:
    """(K, S, S, 3) -> (S, S, 3K), oldest first on channels (model.py's convention)."""
    k, s, _, c = frames.shape
    return np.ascontiguousarray(np.transpose(frames, (1, 2, 0, 3)).reshape(s, s, k * c))


def jitter(inputs, target, image_size: int, seed):
    """The paper's random jitter, drawn once and applied identically to the input frames and the target.

    Input and target are stacked on channels before the resize (to ``round(1.12 * S)``), the random ``S`` crop and the
    random mirror, so frame t and frame t+1 always move together; a mismatch would teach the generator a spurious shift.

    Args:
        inputs: uint8 ``(S, S, 3K)``, the context frames.
        target: uint8 ``(S, S, 3)``, the next frame.
        image_size: S.
        seed: int tensor of shape ``[2]`` for the stateless random ops (same seed, same crop and flip).

    Returns:
        ``(inputs, target)``, uint8, same shapes.
    """
    import tensorflow as tf

    channels = inputs.shape[-1]
    stacked = tf.concat([inputs, target], axis=-1)
    big = int(round(_JITTER_SCALE * image_size))
    stacked = tf.image.resize(stacked, [big, big], method="bilinear")
    stacked = tf.cast(tf.clip_by_value(tf.round(stacked), 0.0, 255.0), tf.uint8)  # uint8 until the model needs float
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    stacked = tf.image.stateless_random_crop(stacked, [image_size, image_size, channels + 3], seed=seeds[0])
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[1])
    return stacked[..., :channels], stacked[..., channels:]


def _real_examples(frames: np.ndarray, first_pair: int, end_pair: int, context_frames: int, seed: int):
    """Endless shuffled tf.data stream of unjittered (inputs (S,S,3K) uint8, target (S,S,3) uint8) training pairs."""
    import tensorflow as tf

    size = frames.shape[1]

    def gather(pair):
        pair = int(pair)
        indices = _context_indices(pair, first_pair, context_frames) + [pair + 1]
        block = frames[indices]  # one read from the memory map
        return _stack_frames(block[:-1]), np.ascontiguousarray(block[-1])

    def load(pair):
        inputs, target = tf.numpy_function(gather, [pair], [tf.uint8, tf.uint8], stateful=False)
        inputs.set_shape([size, size, 3 * context_frames])
        target.set_shape([size, size, 3])
        return inputs, target

    pairs = tf.data.Dataset.range(first_pair, end_pair)
    pairs = pairs.shuffle(end_pair - first_pair, seed=seed, reshuffle_each_iteration=True).repeat()
    return pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)


def _batches(examples, image_size: int, batch_size: int, seed: int):
    """Jitter each example with its own stateless seed, batch with fixed shapes, prefetch."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip(examples, seeds)
    ds = ds.map(lambda example, s: jitter(example[0], example[1], image_size, s),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _rollout_examples(generator, frames: np.ndarray, first_pair: int, end_pair: int, settings: TrainSettings,
                      seed: int, batch_size: int):
    """Roll the current generator out (dropout off) from random training frames; return refinement pairs.

    From start frame i the model predicts i+1, then i+2 from its own prediction, and so on ``rollout_length`` steps.
    Pair j is (context window holding the model's own j latest predictions -> real frame i+j+1): exactly the
    inputs a long generation feeds back, labelled with what really came next.

    Returns:
        ``(inputs uint8 (P, S, S, 3K), targets uint8 (P, S, S, 3))``.
    """
    import tensorflow as tf

    k = settings.context_frames
    length = min(settings.rollout_length, end_pair - first_pair)  # start i needs frames up to i + length
    candidates = np.arange(first_pair, end_pair - length + 1)
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(candidates, size=min(settings.rollout_starts, len(candidates)), replace=False))

    predict = tf.function(lambda x: tf.cast(generator(x, training=False), tf.float32))
    inputs_out, targets_out = [], []
    for chunk_first in range(0, len(starts), batch_size):
        chunk = starts[chunk_first:chunk_first + batch_size]
        # window: (B, K, S, S, 3) uint8, oldest first
        window = np.stack([frames[_context_indices(int(i), first_pair, k)] for i in chunk])
        for j in range(1, length + 1):
            model_input = np.stack([_stack_frames(w) for w in window]).astype(np.float32) / 127.5 - 1.0
            predicted = predict(tf.constant(model_input)).numpy()
            predicted = np.clip(np.round((predicted + 1.0) * 127.5), 0, 255).astype(np.uint8)
            window = np.concatenate([window[:, 1:], predicted[:, None]], axis=1)
            inputs_out.extend(_stack_frames(w) for w in window)
            targets_out.extend(np.asarray(frames[int(i) + j + 1]) for i in chunk)
    return np.stack(inputs_out), np.stack(targets_out)


# ----------------------------------------------------------------------------------------------------------------------
# Train step
# ----------------------------------------------------------------------------------------------------------------------

def _to_float(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32) * (1.0 / 127.5) - 1.0


def make_train_step(generator, discriminator, generator_optimizer, discriminator_optimizer, step, *,
                    gan_weight: float, l1_weight: float, input_noise: float, batch_size: int, image_size: int,
                    context_frames: int, jit_compile: bool = False, joint_discriminator: bool = False):
    """Build the pix2pix train step as a fixed-shape ``tf.function`` over the given models and optimizers.

    The step takes uint8 batches ``(B, S, S, 3K)`` and ``(B, S, S, 3)``, updates both networks from one forward pass
    (one persistent tape, both gradient sets) and adds 1 to ``step``. Returns ``(gen_total, gen_gan, gen_l1, disc)``.

    ``joint_discriminator`` runs D once on real and fake stacked on the batch axis instead of two calls (the
    discriminator's batch norm then sees real and fake together, which changes its statistics; off by default).

    Speed choices, measured on the shared 2-core AMD EPYC (ngf/ndf 64, batch 1, medians of 3 runs, images per
    CPU-second because 5 other jobs shared the cores; the tutorial-style reference = two tapes, two D calls):
      - one persistent tape vs the tutorial's two tapes: same work (1.005x at 128 px, 1.03x at 256 px): kept for
        clarity, not speed. The tutorial already shares one forward pass between both gradients.
      - joint D call (real+fake in one batch): 0.99x at 128 px, 0.97x at 256 px, and it changes D's batch norm: off.
      - XLA ``jit_compile``: 0.79x per CPU-s (0.65x wall) at 128 px: off on CPU ("auto"), on for GPU (not measured here).
      - also tried, no gain beyond noise: inter-op threads 1 vs 2; the oneDNN bfloat16 auto-mixed-precision graph
        pass (has no effect once the TF context exists); fused batch norm patched into the Keras layer (1.01x).
    ``train()``'s own figure, data pipeline included, matched the bare step: 2.03 img/s vs 1.8-1.9 at 128 px batch 1.
    """
    import tensorflow as tf

    from videogen.model import discriminator_loss, generator_loss

    def train_step(inputs, target):
        condition = _to_float(inputs)
        real = _to_float(target)
        gen_input = condition
        if input_noise > 0:
            gen_input = condition + tf.random.normal(tf.shape(condition), stddev=input_noise)
        with tf.GradientTape(persistent=True) as tape:
            fake = tf.cast(generator(gen_input, training=True), tf.float32)  # float32 losses under mixed precision
            if joint_discriminator:
                logits = discriminator([tf.concat([condition, condition], 0), tf.concat([real, fake], 0)],
                                       training=True)
                real_logits, fake_logits = tf.split(logits, 2, axis=0)
            else:
                real_logits = discriminator([condition, real], training=True)
                fake_logits = discriminator([condition, fake], training=True)
            real_logits, fake_logits = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
            gen_total, gen_gan, gen_l1 = generator_loss(fake_logits, fake, real, gan_weight, l1_weight)
            disc = discriminator_loss(real_logits, fake_logits)
        gen_grads = tape.gradient(gen_total, generator.trainable_variables)
        disc_grads = tape.gradient(disc, discriminator.trainable_variables)
        del tape
        generator_optimizer.apply_gradients(zip(gen_grads, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(disc_grads, discriminator.trainable_variables))
        step.assign_add(1)
        return gen_total, gen_gan, gen_l1, disc

    signature = [tf.TensorSpec([batch_size, image_size, image_size, 3 * context_frames], tf.uint8),
                 tf.TensorSpec([batch_size, image_size, image_size, 3], tf.uint8)]
    return tf.function(train_step, input_signature=signature, jit_compile=jit_compile, reduce_retracing=True)


def make_distributed_train_step(strategy, generator, discriminator, generator_optimizer, discriminator_optimizer, step,
                                *, gan_weight: float, l1_weight: float, input_noise: float, global_batch_size: int,
                                jit_compile: bool = False):
    """The train step of ``make_train_step`` run data-parallel on each replica of ``strategy`` (MirroredStrategy).

    Models, optimizers and ``step`` must have been created under ``strategy.scope()``. The step takes the per-replica
    batches of a ``strategy.experimental_distribute_dataset`` over batches of ``global_batch_size``. Each replica
    weights its loss means by its share of the global batch (``tf.nn.compute_average_loss`` semantics, exact also for
    an uneven split); the Keras optimizers sum the replicas' gradients, so the update is the one a single device makes
    on the whole batch (batch norm statistics aside: per replica) and the learning rate needs no scaling. Returns the four losses over the global batch (a SUM of
    the weighted shares), like ``make_train_step``. ``jit_compile`` XLA-compiles the function each replica runs (the
    form MirroredStrategy supports: its all-reduces then skip ``merge_call``, which it does for GPU devices only).
    """
    import tensorflow as tf

    from videogen.model import discriminator_loss, generator_loss

    def replica_step(inputs, target):
        condition = _to_float(inputs)
        real = _to_float(target)
        gen_input = condition
        if input_noise > 0:
            gen_input = condition + tf.random.normal(tf.shape(condition), stddev=input_noise)
        share = tf.cast(tf.shape(inputs)[0], tf.float32) / float(global_batch_size)
        with tf.GradientTape(persistent=True) as tape:
            fake = tf.cast(generator(gen_input, training=True), tf.float32)
            real_logits = discriminator([condition, real], training=True)
            fake_logits = discriminator([condition, fake], training=True)
            real_logits, fake_logits = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
            gen_total, gen_gan, gen_l1 = generator_loss(fake_logits, fake, real, gan_weight, l1_weight)
            disc = discriminator_loss(real_logits, fake_logits)
            losses = [value * share for value in (gen_total, gen_gan, gen_l1, disc)]
        gen_grads = tape.gradient(losses[0], generator.trainable_variables)
        disc_grads = tape.gradient(losses[3], discriminator.trainable_variables)
        del tape
        generator_optimizer.apply_gradients(zip(gen_grads, generator.trainable_variables))  # all-reduce (SUM) inside
        discriminator_optimizer.apply_gradients(zip(disc_grads, discriminator.trainable_variables))
        return tuple(losses)

    replica_fn = tf.function(replica_step, jit_compile=True, reduce_retracing=True) if jit_compile else replica_step

    def train_step(inputs, target):
        per_replica = strategy.run(replica_fn, args=(inputs, target))
        step.assign_add(1)  # cross-replica context: one increment
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in per_replica)

    return tf.function(train_step, reduce_retracing=True)


# ----------------------------------------------------------------------------------------------------------------------
# Phases, checkpoints, history
# ----------------------------------------------------------------------------------------------------------------------

def total_steps(settings: TrainSettings, num_pairs: int) -> int:
    """The step budget: ``max_steps`` if set, else ``max_epoch`` passes over the pairs (refinement included)."""
    if settings.max_steps > 0:
        return settings.max_steps
    batch = min(settings.batch_size, num_pairs)
    return settings.max_epoch * math.ceil(num_pairs / batch)


def plan_phases(settings: TrainSettings, total: int) -> list[dict]:
    """Split ``[0, total)`` into the main phase and the refine rounds (rounds of zero steps are dropped)."""
    refine_total = int(total * settings.refine_steps_fraction)
    rounds = settings.refine_rounds if refine_total > 0 else 0
    per_round = refine_total // rounds if rounds else 0
    main_end = total - per_round * rounds
    phases = [{"name": "main", "first_step": 0, "end_step": main_end}]
    for r in range(rounds if per_round else 0):
        first = main_end + r * per_round
        phases.append({"name": f"refine{r + 1}", "first_step": first, "end_step": first + per_round})
    return [p for p in phases if p["end_step"] > p["first_step"]]


class _Mirror:
    """Mirrors the local checkpoint dir to an object-storage URI through videogen.storage (imported lazily).

    Only the latest checkpoint travels: ``pull`` fetches the shards the remote ``checkpoint`` state file names (and the
    loss history), ``push`` uploads the new one, state file last, then deletes the remote shards of checkpoints the
    local manager has dropped, so the prefix holds what the manager keeps and a retry downloads one checkpoint."""

    def __init__(self, uri: str | None, local_dir: Path):
        self.uri, self.local_dir, self.client = uri, local_dir, None
        if uri:
            from videogen import storage

            self.client = storage.make_client()  # one client for every call of the run

    def pull(self) -> None:
        if not self.uri:
            return
        from videogen import storage

        names = storage.list_dir(self.uri, client=self.client)
        if storage.CHECKPOINT_STATE_FILE not in names:
            return
        storage.download_dir(self.uri, self.local_dir, files=[storage.CHECKPOINT_STATE_FILE], client=self.client)
        import tensorflow as tf

        state = tf.train.get_checkpoint_state(str(self.local_dir))
        prefix = Path(state.model_checkpoint_path).name if state and state.model_checkpoint_path else None
        wanted = [n for n in names if prefix and n.startswith(prefix + ".")]
        wanted += [n for n in (_HISTORY_FILE,) if n in names]
        storage.download_dir(self.uri, self.local_dir, files=wanted, client=self.client)  # state file: here already
        logger.info("fetched checkpoint %s (%d files) from %s", prefix, len(wanted), self.uri)

    def push(self, latest_prefix: str, kept_prefixes: list[str]) -> None:
        if not self.uri:
            return
        from videogen import storage

        prefix = Path(latest_prefix).name
        names = sorted(p.name for p in self.local_dir.iterdir() if p.name.startswith(prefix + "."))
        if (self.local_dir / _HISTORY_FILE).exists():
            names.append(_HISTORY_FILE)
        # The `checkpoint` state file names the latest checkpoint: upload it last so that a reader never sees it
        # point at shards that are not there yet.
        storage.upload_dir(self.local_dir, self.uri, files=names + [storage.CHECKPOINT_STATE_FILE], client=self.client)
        kept = {Path(p).name for p in kept_prefixes} | {prefix}
        for name in storage.list_dir(self.uri, client=self.client):
            shard_of = name.split(".", 1)[0]
            if shard_of.startswith("ckpt-") and shard_of not in kept:
                storage.remove(storage.join_uri(self.uri, name), client=self.client)


def _summary_scalar(name: str, value: float, step: int) -> None:
    """A TensorBoard scalar through the core op: tensorflow-cpu does not pull in the tensorboard package, whose
    ``tf.summary.scalar`` implementation would otherwise be needed. Same event format and plugin metadata."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                                           data_class=summary_pb2.DATA_CLASS_SCALAR)
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=metadata)


def _summary_image(name: str, image_uint8, step: int) -> None:
    """A TensorBoard image (the images plugin's ``[width, height, png]`` string tensor) through the core op."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
                                           data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    height, width = int(image_uint8.shape[0]), int(image_uint8.shape[1])
    tensor = tf.stack([tf.as_string(width), tf.as_string(height), tf.io.encode_png(image_uint8)])
    tf.summary.write(name, tensor, step=step, metadata=metadata)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


_LOSS_NAMES = ("gen_total", "gen_gan", "gen_l1", "disc")


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------

def train(dataset_dir: Path, output_dir: Path, settings: TrainSettings, checkpoint_dir: str | None = None) -> dict:
    """Train the next-frame pix2pix model on a prepared dataset and export it.

    Args:
        dataset_dir: dataset dir from the prepare stage.
        output_dir: model dir to write (created).
        settings: the stage's settings.
        checkpoint_dir: where checkpoints live: None = ``output_dir/checkpoints``; a local path is used directly; an
            ``s3://`` or ``minio://`` URI is mirrored (its latest checkpoint pulled before start, each save pushed)
            through a temporary local copy outside ``output_dir``, so a retried task in a fresh pod resumes and the
            model dir (the task's output artifact) carries no checkpoints.

    Returns:
        The content of ``model.json``.

    Raises:
        InputError: the dataset dir or a setting is not usable, or the checkpoint dir holds another model.
    """
    started = time.perf_counter()
    validate_settings(settings)
    frames, info = _read_dataset(Path(dataset_dir))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    remote_uri = None
    # A remote checkpoint dir gets a local working copy outside the model dir: the model dir is the task's output
    # artifact on a cluster, and checkpoints in it would be uploaded and downloaded with the model by every stage.
    scratch = contextlib.ExitStack()
    if checkpoint_dir is None:
        local_ckpt = output_dir / "checkpoints"
    else:
        from videogen import storage

        if storage.is_remote(str(checkpoint_dir)):
            remote_uri = str(checkpoint_dir)
            local_ckpt = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="videogen-checkpoints-")))
        else:
            local_ckpt = Path(checkpoint_dir)
    with scratch:
        return _train(Path(dataset_dir), frames, info, output_dir, settings, local_ckpt, remote_uri, started)


def _train(dataset_dir: Path, frames, info: dict, output_dir: Path, settings: TrainSettings, local_ckpt: Path,
           remote_uri: str | None, started: float) -> dict:
    local_ckpt.mkdir(parents=True, exist_ok=True)
    mirror = _Mirror(remote_uri, local_ckpt)
    mirror.pull()

    import keras
    import tensorflow as tf

    from videogen.model import build_discriminator, build_generator
    from videogen.optim import FusedAdam

    size = frames.shape[1]
    k = settings.context_frames
    first_pair, end_pair = (int(v) for v in info["train"])
    num_pairs = end_pair - first_pair
    batch = settings.batch_size
    if num_pairs < batch:
        logger.warning("only %d training pairs: batch size clamped from %d to %d", num_pairs, batch, num_pairs)
        batch = num_pairs
    total = total_steps(settings, num_pairs)
    phases = plan_phases(settings, total)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    # Data parallelism (issue 4). Not run here: this project has no machine with several GPUs and TensorFlow, so the
    # strategy path is tested on 2 logical CPU devices only (tests/unit/test_train_distributed.py); NCCL all-reduce and
    # XLA with several GPUs are untested.
    devices = _resolve_devices(settings.devices, batch)
    strategy = tf.distribute.MirroredStrategy(devices) if devices else None
    replicas = strategy.num_replicas_in_sync if strategy else 1
    if devices:
        gpu = any("GPU" in name.upper() for name in devices)
    jit = _resolve_jit(settings.jit_compile, gpu)
    if strategy and jit and str(settings.jit_compile).strip().lower() == "auto":
        jit = False  # XLA under MirroredStrategy was never run here (no GPUs): opt in with jit_compile=true
    if strategy and jit and not all("GPU" in name.upper() for name in devices):
        logger.warning("XLA is off: MirroredStrategy compiles its replica step only on GPU devices")
        jit = False
    if strategy:
        logger.info("distribution: MirroredStrategy over %d replicas (%s): global batch %d, %s per replica; learning "
                    "rate %g as set (losses are means over the global batch)", replicas, ", ".join(devices), batch,
                    f"{batch // replicas}" if batch % replicas == 0 else f"{batch // replicas}-{batch // replicas + 1}",
                    settings.learning_rate)
    else:
        logger.info("distribution: none (one device, 1 replica)")

    keras.utils.set_random_seed(settings.seed)
    policy = _resolve_precision(settings.precision, gpu)
    previous_policy = keras.config.dtype_policy()
    # Models, optimizers and the step counter are created under the strategy's scope (mirrored on each replica).
    with strategy.scope() if strategy else contextlib.nullcontext():
        keras.config.set_dtype_policy(policy)
        try:
            generator = build_generator(size, settings.ngf, k, settings.residual, norm=settings.norm,
                                        dropout=settings.dropout)
            discriminator = build_discriminator(size, settings.ndf, k)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        logger.info("precision %s, XLA %s, %s", policy, "on" if jit else "off", "GPU" if gpu else "CPU")
        # Keras' Adam, updated with TensorFlow's fused kernel: 57 M parameters at 256 px cost ~140 ms per step in
        # Keras' element-wise ops vs ~37 ms fused on the 2-core CPU (videogen/optim.py).
        generator_optimizer = FusedAdam(settings.learning_rate, beta_1=settings.beta1)
        discriminator_optimizer = FusedAdam(settings.learning_rate, beta_1=settings.beta1)
        # Create the optimizer slots now so that a restore fills them in place instead of deferring.
        generator_optimizer.build(generator.trainable_variables)
        discriminator_optimizer.build(discriminator.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(step=step, generator=generator, discriminator=discriminator,
                                     generator_optimizer=generator_optimizer,
                                     discriminator_optimizer=discriminator_optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(local_ckpt), max_to_keep=3)

    history: dict[str, Any] = {"points": [], "phase_sums": {}}
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise InputError(f"checkpoint {manager.latest_checkpoint} does not match these settings (image size, "
                             f"ngf, ndf, context_frames, residual, norm, dropout): use another checkpoint dir") from error
        restored = int(step.numpy())
        if restored > total:
            raise InputError(f"checkpoint dir {local_ckpt} already holds {restored} steps, more than the "
                             f"{total} requested: use another checkpoint dir or ask for at least {restored}")
        history_path = local_ckpt / _HISTORY_FILE
        if history_path.exists():
            saved = json.loads(history_path.read_text())
            if int(saved.get("step", -1)) == restored:
                history = saved
                history["points"] = [p for p in history["points"] if p["step"] <= restored]
        logger.info("resumed from step %d of %d (checkpoint %s)", restored, total, manager.latest_checkpoint)
    start_step = int(step.numpy())

    logs_dir = output_dir / "logs"
    writer = tf.summary.create_file_writer(str(logs_dir))
    if strategy is None:
        train_step = make_train_step(generator, discriminator, generator_optimizer, discriminator_optimizer, step,
                                     gan_weight=settings.gan_weight, l1_weight=settings.l1_weight,
                                     input_noise=settings.input_noise, batch_size=batch, image_size=size,
                                     context_frames=k, jit_compile=jit)
    else:
        train_step = make_distributed_train_step(strategy, generator, discriminator, generator_optimizer,
                                                 discriminator_optimizer, step, gan_weight=settings.gan_weight,
                                                 l1_weight=settings.l1_weight, input_noise=settings.input_noise,
                                                 global_batch_size=batch, jit_compile=jit)

    # A fixed sample for TensorBoard: the first validation pair if there is one, else the first training pair.
    val = info.get("val") or [first_pair, first_pair]
    sample_block_first = int(val[0]) if int(val[1]) > int(val[0]) else first_pair
    sample_block = frames[_context_indices(sample_block_first, sample_block_first, k) + [sample_block_first + 1]]
    sample_input = _stack_frames(np.asarray(sample_block[:-1]))[None]
    sample_target = np.asarray(sample_block[-1])[None]

    def write_sample(at_step: int) -> None:
        prediction = tf.cast(generator(_to_float(sample_input), training=False), tf.float32)
        strip = tf.concat([_to_float(sample_input[..., -3:]), prediction, _to_float(sample_target)], axis=2)[0]
        strip = tf.cast(tf.clip_by_value(tf.round((strip + 1.0) * 127.5), 0, 255), tf.uint8)
        with writer.as_default():
            _summary_image("input_prediction_target", strip, at_step)

    def save(at_step: int) -> None:
        history["step"] = at_step
        _atomic_write_text(local_ckpt / _HISTORY_FILE, json.dumps(history))
        path = manager.save(checkpoint_number=at_step)
        mirror.push(path, manager.checkpoints)
        write_sample(at_step)
        writer.flush()

    timed_images, timed_seconds = 0, 0.0
    rollout_seconds = 0.0
    logger.info("training %d steps at batch %d on %d pairs (%d px, K=%d, jit %s, %s, %d replica%s): phases %s", total,
                batch, num_pairs, size, k, jit, "GPU" if gpu else "CPU", replicas, "" if replicas == 1 else "s",
                ", ".join(f"{p['name']} [{p['first_step']}, {p['end_step']})" for p in phases))
    for phase_index, phase in enumerate(phases):
        if start_step >= phase["end_step"]:
            continue
        phase_seed = settings.seed + 1000 * phase_index + start_step  # a resumed run does not replay the same order
        examples = _real_examples(frames, first_pair, end_pair, k, phase_seed)
        if phase["name"] != "main":
            t0 = time.perf_counter()
            pool_inputs, pool_targets = _rollout_examples(generator, frames, first_pair, end_pair, settings,
                                                          seed=settings.seed + phase_index, batch_size=batch)
            rollout_seconds += time.perf_counter() - t0
            logger.info("%s: %d rollout pairs from the current model (%.1f s), mixed %.0f%% with real pairs",
                        phase["name"], len(pool_inputs), time.perf_counter() - t0, 100 * settings.refine_mix)
            rollouts = tf.data.Dataset.from_tensor_slices((pool_inputs, pool_targets))
            rollouts = rollouts.shuffle(len(pool_inputs), seed=phase_seed).repeat()
            examples = tf.data.Dataset.sample_from_datasets(
                [examples, rollouts], weights=[1.0 - settings.refine_mix, settings.refine_mix], seed=phase_seed)
        batches = _batches(examples, size, batch, seed=phase_seed + 1)
        if strategy is not None:
            # Batched with the global batch (drop_remainder) and split across the replicas; one worker: no sharding.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            batches = strategy.experimental_distribute_dataset(batches.with_options(options))
        batches = iter(batches)

        sums = history["phase_sums"].setdefault(phase["name"], {"steps": 0, **{n: 0.0 for n in _LOSS_NAMES}})
        phase_steps_run = 0
        rate_t0, rate_step = time.perf_counter(), int(step.numpy())
        current = int(step.numpy())
        while current < phase["end_step"]:
            t0 = time.perf_counter()
            inputs, target = next(batches)
            losses = [float(v) for v in train_step(inputs, target)]  # float() waits for the step to finish
            elapsed = time.perf_counter() - t0
            current += 1
            phase_steps_run += 1
            if phase_steps_run > _WARMUP_STEPS:
                timed_images += batch
                timed_seconds += elapsed
            if not all(math.isfinite(v) for v in losses):
                raise FloatingPointError(f"non-finite loss at step {current}: {dict(zip(_LOSS_NAMES, losses))}")
            sums["steps"] += 1
            for name, value in zip(_LOSS_NAMES, losses):
                sums[name] += value
            sums["final"] = dict(zip(_LOSS_NAMES, losses))
            if current % settings.log_every == 0 or current == total:
                now = time.perf_counter()
                rate = (current - rate_step) * batch / max(now - rate_t0, 1e-9)
                rate_t0, rate_step = now, current
                eta = (total - current) * batch / rate if rate > 0 else float("nan")
                values = dict(zip(_LOSS_NAMES, losses))
                logger.info("step %d/%d [%s] gen %.4f (gan %.4f, l1 %.4f) disc %.4f | %.2f img/s | ETA %s",
                            current, total, phase["name"], *losses, rate, _format_duration(eta))
                history["points"].append({"step": current, "phase": phase["name"],
                                          **{n: round(v, 6) for n, v in values.items()}})
                with writer.as_default():
                    for name, value in values.items():
                        _summary_scalar(f"loss/{name}", value, current)
                    _summary_scalar("images_per_s", rate, current)
            if current % settings.checkpoint_every == 0 and current != total:
                save(current)
    if manager.latest_checkpoint is None or int(Path(manager.latest_checkpoint).name.split("-")[-1]) != total:
        save(total)
    writer.close()

    train_images_per_s = timed_images / timed_seconds if timed_seconds > 0 else None
    generator_path = output_dir / "generator.keras"
    tmp_path = output_dir / ".generator.tmp.keras"
    export = generator
    if policy != "float32" or strategy is not None:
        # Export a float32 generator: the file then loads and runs the same everywhere (the K80 has no bf16). Under a
        # strategy, a plain copy outside its scope (no mirrored variables, no synchronized batch norm in the file).
        export = build_generator(size, settings.ngf, k, settings.residual, norm=settings.norm,
                                 dropout=settings.dropout)
        export.set_weights(generator.get_weights())
    export.save(tmp_path)
    os.replace(tmp_path, generator_path)
    from videogen.export import export_savedmodel

    export_savedmodel(export, output_dir)  # for the K80 image, whose Keras 2 cannot read generator.keras

    phase_summary = []
    for phase in phases:
        sums = history["phase_sums"].get(phase["name"], {"steps": 0})
        n = sums.get("steps", 0)
        phase_summary.append({
            **phase,
            "final": sums.get("final"),
            "mean": {name: sums[name] / n for name in _LOSS_NAMES} if n else None,
        })
    model_info = {
        "image_size": size,
        "fps": float(info["fps"]),
        "steps": int(step.numpy()),
        "context_frames": k,
        "residual": settings.residual,
        "norm": settings.norm,
        "dropout": settings.dropout,
        "ngf": settings.ngf,
        "ndf": settings.ndf,
        "batch_size": batch,
        "settings": dataclasses.asdict(settings),
        "history": {"phases": phase_summary, "points": history["points"]},
        "train_images_per_s": train_images_per_s,
        "train_images_per_s_note": f"steady state of this process's steps (first {_WARMUP_STEPS} steps of each phase, "
                                   "checkpoint saves and rollouts left out); data loading included",
        "timed_images": timed_images,
        "rollout_s": round(rollout_seconds, 3),
        "resumed_from_step": start_step if start_step else None,
        "jit_compile": jit,
        "precision": policy,
        "device": "GPU" if gpu else "CPU",
        "replicas": replicas,
        "devices": devices,
        "distribution": "MirroredStrategy" if strategy else None,
        "duration_s": round(time.perf_counter() - started, 3),
        "dataset": {"dir": str(dataset_dir), "source": info.get("source"), "train": [first_pair, end_pair],
                    "num_frames": int(len(frames))},
        "checkpoint_dir": remote_uri or str(local_ckpt),
    }
    _atomic_write_text(output_dir / "model.json", json.dumps(model_info, indent=2))
    logger.info("trained %d steps in %s (%s img/s steady state); wrote %s", model_info["steps"],
                _format_duration(model_info["duration_s"]),
                f"{train_images_per_s:.2f}" if train_images_per_s else "n/a", generator_path)
    return model_info
