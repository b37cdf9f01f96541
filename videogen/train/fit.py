"""The train stage end to end: plan the run, pick devices and precision, build the models, restore, run the phases,
export the generator and write model.json."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videogen import artifacts, hardware, steering
from videogen.errors import InputError
from videogen.frames import context_indices, stack_context
from videogen.train import data
from videogen.train.checkpoint import Checkpoints, Mirror, local_checkpoint_dir
from videogen.train.monitor import WARMUP_STEPS, Monitor, format_duration
from videogen.train.settings import (
    TrainSettings,
    plan_phases,
    resolve_jit,
    resolve_precision,
    total_steps,
    validate_settings,
)
from videogen.train.step import LOSS_NAMES, make_distributed_train_step, make_train_step

logger = logging.getLogger("videogen.train")


@dataclass
class _Plan:
    """What the run does: the data, the batch, the step budget and its phases."""

    settings: TrainSettings
    dataset: artifacts.Dataset
    blocks: list[tuple[int, int]]  # the train block of each source video, as pair indices of dataset.frames
    shots: list[tuple[int, int]]  # the same pairs split at shot cuts (data.shot_blocks): the blocks examples come from
    batch: int
    total: int
    phases: list[dict]

    @property
    def num_pairs(self) -> int:
        return sum(end - first for first, end in self.shots)


def _plan(settings: TrainSettings, dataset: artifacts.Dataset) -> _Plan:
    blocks = [video.file_block("train") for video in dataset.videos]
    shots = data.shot_blocks(dataset.frames, blocks)
    num_pairs, batch = sum(end - first for first, end in shots), settings.batch_size
    if settings.unroll_steps > 1 and not data.window_blocks(shots, settings.unroll_steps):
        raise InputError(f"unroll_steps {settings.unroll_steps} needs a training block of at least that many pairs "
                         f"within one shot; the longest has {max(end - first for first, end in shots)}")
    if num_pairs < batch:
        logger.warning("only %d training pairs: batch size clamped from %d to %d", num_pairs, batch, num_pairs)
        batch = num_pairs
    total = total_steps(settings, num_pairs)
    return _Plan(settings, dataset, blocks, shots, batch, total, plan_phases(settings, total))


@dataclass
class _Devices:
    """Where and how the step runs."""

    strategy: Any  # tf.distribute.MirroredStrategy or MultiWorkerMirroredStrategy, or None for one device
    names: list[str] | None
    gpu: bool
    jit: bool
    precision: str  # "float32" or "bfloat16"
    workers: int = 1  # processes (nodes) in the strategy's cluster
    chief: bool = True  # the worker that writes checkpoints and the model (worker 0; the only one without a cluster)

    @property
    def distribution(self) -> str | None:
        if self.strategy is None:
            return None
        return "MultiWorkerMirroredStrategy" if self.workers > 1 else "MirroredStrategy"

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy else 1

    def scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()


def _multi_worker_strategy() -> tuple[Any, list[str], int, bool]:
    """MultiWorkerMirroredStrategy over the cluster of ``TF_CONFIG``: ``(strategy, local devices, workers, chief)``.
    The chief is worker 0 (the cluster has no separate "chief" task), as in TensorFlow's multi-worker tutorial
    (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_ctl): it alone writes checkpoints and the
    model; the other workers save to their own scratch copies (every worker must take part in a save)."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    chief = resolver.task_type == "chief" or ("chief" not in cluster and int(resolver.task_id or 0) == 0)
    return strategy, list(strategy.extended.worker_devices), max(workers, 1), chief


def _choose_devices(settings: TrainSettings, batch: int) -> _Devices:
    """Data parallelism over several devices with MirroredStrategy (or over several nodes with
    MultiWorkerMirroredStrategy), else the plain step on the default device. The strategy paths are tested on 2
    logical CPU devices and on 2 worker processes on 127.0.0.1 (tests/unit/test_train_distributed.py,
    tests/e2e/test_train_multiworker.py); NCCL all-reduce and XLA with several GPUs are untested, so XLA there is
    opt-in (jit_compile=true)."""
    import tensorflow as tf

    workers, chief = 1, True
    if hardware.parse_devices(settings.devices)[0] == "multiworker":
        strategy, names, workers, chief = _multi_worker_strategy()
    else:
        names = hardware.resolve_devices(settings.devices, batch)
        strategy = tf.distribute.MirroredStrategy(names) if names else None
    gpu = any("GPU" in n.upper() for n in names) if names else bool(tf.config.list_physical_devices("GPU"))
    jit = resolve_jit(settings.jit_compile, gpu)
    if strategy and jit and str(settings.jit_compile).strip().lower() == "auto":
        jit = False
    if strategy and jit and not all("GPU" in n.upper() for n in names):
        logger.warning("XLA is off: MirroredStrategy compiles its replica step only on GPU devices")
        jit = False
    devices = _Devices(strategy, names, gpu, jit, resolve_precision(settings.precision, gpu), workers, chief)
    if strategy:
        r = devices.replicas
        logger.info("distribution: %s over %d replicas (%d worker%s; here %s): global batch %d, %s per replica; "
                    "learning rate %g as set (losses are means over the global batch)", devices.distribution, r,
                    workers, "" if workers == 1 else "s", ", ".join(names), batch,
                    f"{batch // r}" if batch % r == 0 else f"{batch // r}-{batch // r + 1}", settings.learning_rate)
    else:
        logger.info("distribution: none (one device, 1 replica)")
    return devices


def _build_generator(settings: TrainSettings, size: int, patch_matmul: bool = False):
    from videogen.model import build_generator

    return build_generator(size, settings.ngf, settings.context_frames, settings.residual, norm=settings.norm,
                           dropout=settings.dropout, patch_matmul=patch_matmul)


def _build_models(settings: TrainSettings, size: int, devices: _Devices) -> dict[str, Any]:
    """Both models, both optimizers and the step counter, created under the strategy's scope (mirrored on each
    replica); the models compute at the run's precision, their variables stay float32. On CPUs the generator's
    innermost convolutions and transposed convolutions compute as matrix products (``patch_matmul``: the same weights
    and sums, no oneDNN weight reorders; measured on CPUs only, so GPUs keep the convolutions)."""
    import keras
    import tensorflow as tf

    from videogen.model import build_discriminator
    from videogen.optim import FusedAdam

    keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.config.dtype_policy()
    with devices.scope():
        keras.config.set_dtype_policy(hardware.keras_training_policy(devices.precision))
        try:
            generator = _build_generator(settings, size, patch_matmul=not devices.gpu)
            discriminator = build_discriminator(size, settings.ndf, settings.context_frames)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        # Keras' Adam updated by TensorFlow's fused kernel: far fewer ops per step (videogen/optim.py).
        generator_optimizer = FusedAdam(settings.learning_rate, beta_1=settings.beta1,
                                        use_ema=settings.ema_decay > 0, ema_momentum=settings.ema_decay)
        discriminator_optimizer = FusedAdam(settings.learning_rate, beta_1=settings.beta1)
        # Create the optimizer slots now so that a restore fills them in place instead of deferring.
        generator_optimizer.build(generator.trainable_variables)
        discriminator_optimizer.build(discriminator.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    return {"step": step, "generator": generator, "discriminator": discriminator,
            "generator_optimizer": generator_optimizer, "discriminator_optimizer": discriminator_optimizer}


def _phase_unroll(settings: TrainSettings, phase: dict) -> int:
    """Fed-back steps per example in ``phase``: ``unroll_steps`` in the unroll phase, else 1."""
    return settings.unroll_steps if phase["name"] == "unroll" else 1


def _make_step(models: dict[str, Any], plan: _Plan, devices: _Devices, unroll_steps: int = 1):
    s = plan.settings
    networks = (models["generator"], models["discriminator"], models["generator_optimizer"],
                models["discriminator_optimizer"], models["step"])
    losses = {"gan_weight": s.gan_weight, "l1_weight": s.l1_weight, "input_noise": s.input_noise,
              "jit_compile": devices.jit, "context_frames": s.context_frames, "unroll_steps": unroll_steps}
    if devices.strategy is None:
        return make_train_step(*networks, batch_size=plan.batch, image_size=plan.dataset.image_size, **losses)
    return make_distributed_train_step(devices.strategy, *networks, global_batch_size=plan.batch, **losses)


def _sample(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample for TensorBoard: the first video's first validation pair if there is one, else its first
    training pair."""
    video = plan.dataset.videos[0]
    val = video.info.get("val") or [0, 0]
    first = int(val[0]) + video.first_frame if int(val[1]) > int(val[0]) else plan.blocks[0][0]
    block = plan.dataset.frames[context_indices(first, first, plan.settings.context_frames) + [first + 1]]
    return stack_context(np.asarray(block[:-1]))[None], np.asarray(block[-1])[None]


def _phase_examples(plan: _Plan, phase_index: int, phase: dict, phase_seed: int, generator,
                    devices: _Devices) -> tuple[Any, float]:
    """The phase's example stream (real pairs; in a refine round mixed with fresh rollout pairs) and the seconds the
    rollouts took."""
    s = plan.settings
    # Under a strategy every worker must draw the same global batches (each takes its own share): a fixed order.
    examples = data.block_examples(plan.dataset.frames, plan.shots, s.context_frames, phase_seed,
                                   deterministic=devices.strategy is not None,
                                   unroll_steps=_phase_unroll(s, phase), reverse=s.reverse)
    if phase["name"] in ("main", "unroll"):
        return examples, 0.0
    t0 = time.perf_counter()
    pool_inputs, pool_targets = data.refinement_examples(
        generator, plan.dataset.frames, plan.shots, context_frames=s.context_frames,
        rollout_length=s.rollout_length, rollout_starts=s.rollout_starts, seed=s.seed + phase_index,
        batch_size=plan.batch)
    seconds = time.perf_counter() - t0
    logger.info("%s: %d rollout pairs from the current model (%.1f s), mixed %.0f%% with real pairs", phase["name"],
                len(pool_inputs), seconds, 100 * s.refine_mix)
    return data.mixed_examples(examples, pool_inputs, pool_targets, s.refine_mix, phase_seed), seconds


def _run_phase(plan: _Plan, phase: dict, batches, train_step, step, monitor: Monitor, save) -> None:
    """Train from the current step to the end of ``phase``, checkpointing every ``checkpoint_every`` steps."""
    sums = monitor.start_phase(phase["name"], int(step.numpy()))
    current, steps_in_phase = int(step.numpy()), 0
    while current < phase["end_step"]:
        t0 = time.perf_counter()
        inputs, target = next(batches)
        losses = [float(v) for v in train_step(inputs, target)]  # float() waits for the step to finish
        current += 1
        steps_in_phase += 1
        monitor.step_done(phase["name"], sums, current, losses, time.perf_counter() - t0, steps_in_phase)
        if current % plan.settings.checkpoint_every == 0 and current != plan.total:
            save(current)


def _fit(plan: _Plan, models: dict[str, Any], devices: _Devices, checkpoints: Checkpoints, monitor: Monitor,
         start_step: int) -> float:
    """Run the phases left after ``start_step`` and save the final checkpoint; returns the seconds spent in rollouts."""
    steps: dict[int, Any] = {}  # one compiled step per unroll length (the plain step, the unrolled one)
    generator = models["generator"]

    def save(at_step: int) -> None:
        checkpoints.save(at_step)
        monitor.write_sample(generator, at_step)

    rollout_seconds = 0.0
    for phase_index, phase in enumerate(plan.phases):
        if start_step >= phase["end_step"]:
            continue
        phase_seed = plan.settings.seed + 1000 * phase_index + start_step  # a resumed run does not replay the order
        examples, seconds = _phase_examples(plan, phase_index, phase, phase_seed, generator, devices)
        rollout_seconds += seconds
        batches = data.batches(examples, plan.dataset.image_size, plan.batch, seed=phase_seed + 1,
                               strategy=devices.strategy, workers=devices.workers)
        unroll = _phase_unroll(plan.settings, phase)
        if unroll not in steps:
            steps[unroll] = _make_step(models, plan, devices, unroll)
        _run_phase(plan, phase, iter(batches), steps[unroll], models["step"], monitor, save)
    if checkpoints.latest_step() != plan.total:
        save(plan.total)
    return rollout_seconds


def _export(generator, settings: TrainSettings, output_dir: Path) -> Path:
    """Write ``generator.keras`` (atomically) and the SavedModel beside it; both float32 and strategy-free."""
    from videogen.export import export_savedmodel

    # Always a plain copy: built-in layers only (the trained one may hold training-only layers, patch_matmul), float32
    # (loads and runs the same everywhere: the K80 has no bf16) and, under a strategy, outside its scope (no
    # mirrored variables in the file).
    export = _build_generator(settings, generator.input_shape[1])
    export.set_weights(generator.get_weights())
    path = output_dir / artifacts.GENERATOR_FILE
    tmp_path = output_dir / f".{artifacts.GENERATOR_FILE}.tmp.keras"
    export.save(tmp_path)
    artifacts.move_file(tmp_path, path)
    export_savedmodel(export, output_dir)  # for the K80 image, whose Keras 2 cannot read generator.keras
    return path


def _phase_summary(plan: _Plan, history: dict) -> list[dict]:
    summary = []
    for phase in plan.phases:
        sums = history["phase_sums"].get(phase["name"], {"steps": 0})
        n = sums.get("steps", 0)
        summary.append({**phase, "final": sums.get("final"),
                        "mean": {name: sums[name] / n for name in LOSS_NAMES} if n else None})
    return summary


def _model_info(plan: _Plan, devices: _Devices, monitor: Monitor, steps: int, start_step: int,
                rollout_seconds: float, duration_s: float, checkpoint_dir: str) -> dict:
    """The content of model.json: what the generator is, how it was trained, and how fast."""
    s, dataset = plan.settings, plan.dataset
    return {
        "image_size": dataset.image_size, "fps": dataset.fps, "steps": steps, "context_frames": s.context_frames,
        "residual": s.residual, "norm": s.norm, "dropout": s.dropout, "ngf": s.ngf, "ndf": s.ndf,
        "batch_size": plan.batch, "settings": dataclasses.asdict(s),
        "history": {"phases": _phase_summary(plan, monitor.history), "points": monitor.history["points"]},
        "train_images_per_s": monitor.images_per_s,
        "train_images_per_s_note": f"steady state of this process's steps (first {WARMUP_STEPS} steps of each phase, "
                                   "checkpoint saves and rollouts left out); data loading included",
        "timed_images": monitor.timed_images,
        "rollout_s": round(rollout_seconds, 3),
        "resumed_from_step": start_step if start_step else None,
        "jit_compile": devices.jit,
        "precision": hardware.keras_training_policy(devices.precision),
        "device": "GPU" if devices.gpu else "CPU",
        "replicas": devices.replicas, "devices": devices.names,
        "distribution": devices.distribution, "workers": devices.workers,
        "duration_s": round(duration_s, 3),
        "dataset": {"dir": str(dataset.dir), "source": dataset.info.get("source"),
                    "train": list(plan.blocks[0]) if len(plan.blocks) == 1 else [list(b) for b in plan.blocks],
                    "videos": len(plan.blocks), "shots": len(plan.shots), "pairs": plan.num_pairs,
                    "num_frames": int(len(dataset.frames))},
        "checkpoint_dir": checkpoint_dir,
    }


def steering_targets(dataset: artifacts.Dataset, seed: int) -> steering.Targets:
    """The generate stage's steering targets from every source video's training and held-out (val) frames."""
    train_clips, heldout_clips = [], []
    for video in dataset.videos:
        first, end = video.block("train")
        train_clips.append(video.frames[first:end + 1])  # memory-map slices: clip_targets reads what it needs
        try:
            val_first, val_end = video.block("val")
        except InputError:
            val_first = val_end = 0
        heldout_clips.append(video.frames[val_first:val_end + 1] if val_end > val_first else video.frames[:0])
    return steering.clip_targets(train_clips, heldout_clips, seed)


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
    if settings.train_nodes > 1 and hardware.parse_devices(settings.devices)[0] != "multiworker":
        raise InputError(f"train_nodes {settings.train_nodes}: training on several nodes runs as a Kubeflow Trainer "
                         f"TrainJob that the pipeline's train step launches on a cluster (docs/cluster.md): set "
                         f"train_nodes 1 to train here")
    dataset = artifacts.open_dataset(Path(dataset_dir))
    dataset.check_trainable()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as scratch:
        shared = hardware.parse_devices(settings.devices)[0] == "multiworker"
        local_ckpt, remote_uri = local_checkpoint_dir(output_dir, checkpoint_dir, scratch, shared=shared)
        local_ckpt.mkdir(parents=True, exist_ok=True)
        info = _train(_plan(settings, dataset), output_dir, local_ckpt, remote_uri, started)
    steering.save_targets(steering_targets(dataset, settings.seed), output_dir)
    artifacts.atomic_write_json(output_dir / artifacts.MODEL_INFO_FILE, info)
    logger.info("trained %d steps in %s (%s img/s steady state); wrote %s", info["steps"],
                format_duration(info["duration_s"]),
                f"{info['train_images_per_s']:.2f}" if info["train_images_per_s"] else "n/a",
                output_dir / artifacts.GENERATOR_FILE)
    return info


def _train(plan: _Plan, output_dir: Path, local_ckpt: Path, remote_uri: str | None, started: float) -> dict:
    """Pull the checkpoint, build, restore, fit, export: like the pix2pix tutorial's ``fit`` with resumption."""
    devices = _choose_devices(plan.settings, plan.batch)  # first: MultiWorkerMirroredStrategy wants to come first
    mirror = Mirror(remote_uri, local_ckpt, push=devices.chief)
    mirror.pull()
    models = _build_models(plan.settings, plan.dataset.image_size, devices)
    logger.info("precision %s, XLA %s, %s", hardware.keras_training_policy(devices.precision),
                "on" if devices.jit else "off", "GPU" if devices.gpu else "CPU")
    checkpoints = Checkpoints(local_ckpt, mirror, **models)
    start_step = checkpoints.restore(plan.total)
    monitor = Monitor(output_dir / artifacts.LOGS_DIR, checkpoints.history, plan.total, plan.batch,
                      plan.settings.log_every, _sample(plan))
    s = plan.settings
    logger.info("training %d steps at batch %d on %d pairs in %d shot(s) of %d video(s) (%d px, K=%d, jit %s, %s, %d "
                "replica%s): phases %s",
                plan.total, plan.batch, plan.num_pairs, len(plan.shots), len(plan.blocks), plan.dataset.image_size,
                s.context_frames, devices.jit,
                "GPU" if devices.gpu else "CPU", devices.replicas, "" if devices.replicas == 1 else "s",
                ", ".join(f"{p['name']} [{p['first_step']}, {p['end_step']})" for p in plan.phases))
    try:
        rollout_seconds = _fit(plan, models, devices, checkpoints, monitor, start_step)
    finally:
        monitor.close()  # also takes the progress bar down (and gives logging its handlers back)
    # The exported generator is the weights' moving average (the checkpoints keep both, so a resumed run goes on
    # from the last weights).
    models["generator_optimizer"].finalize_variable_values(models["generator"].trainable_variables)
    if devices.chief:  # the other workers' model dirs are scratch
        _export(models["generator"], s, output_dir)
    return _model_info(plan, devices, monitor, int(models["step"].numpy()), start_step, rollout_seconds,
                       time.perf_counter() - started, remote_uri or str(local_ckpt))
