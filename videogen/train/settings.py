"""Settings of the train stage, their validation, and the step budget split into phases.

Importing this module does not import TensorFlow: the CLI reads ``TrainSettings`` cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from videogen import hardware
from videogen.errors import InputError


@dataclass(frozen=True)
class TrainSettings:
    """Settings of the train stage. Field names are the CLI flags and the component parameters."""

    max_epoch: int = field(default=20, metadata={
        "help": "passes over the training pairs (used only when --max-steps is 0)"})
    max_steps: int = field(default=0, metadata={
        "help": "total training steps, refinement included; 0 = derive from --max-epoch. If both are set, "
                "--max-steps wins"})
    batch_size: int = field(default=16, metadata={
        "help": "images per step (16, as the original workflow); clamped with a warning to the number of training pairs"})
    l1_weight: float = field(default=100.0, metadata={
        "help": "weight of the L1 term in the generator loss (the paper's 100; the original workflow used 1)"})
    gan_weight: float = field(default=0.1, metadata={
        "help": "weight of the GAN term in the generator loss (the paper's 1; 0.1 is best on real clips, "
                "docs/quality.md: 1 loses to copying, 0 freezes long generations)"})
    ngf: int = field(default=64, metadata={"help": "generator filters in the first layer"})
    ndf: int = field(default=64, metadata={"help": "discriminator filters in the first layer"})
    learning_rate: float = field(default=2e-4, metadata={"help": "Adam learning rate (both networks)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta_1 (both networks)"})
    ema_decay: float = field(default=0.995, metadata={
        "help": "the exported generator is an exponential moving average of its weights over the steps, with this "
                "decay per step (warmed up as min(decay, (1 + step) / (10 + step))): steadier than the last "
                "weights of a GAN, and ahead of them 1, 5 and 10 fed-back steps ahead on real clips "
                "(docs/quality.md); 0 = the last weights"})
    checkpoint_every: int = field(default=500, metadata={
        "help": "save a checkpoint every N steps (and at the end); a restart loses at most this many steps"})
    log_every: int = field(default=50, metadata={
        "help": "log a progress line, TensorBoard scalars and a loss-history point every N steps"})
    seed: int = field(default=0, metadata={"help": "seed for weights, shuffling, jitter and rollout starts"})
    context_frames: int = field(default=2, metadata={
        "help": "K: how many past frames the generator sees, stacked on channels. 1 is the original workflow's behaviour, but with "
                "the paper's random mirror jitter one frame cannot tell which way things move, so a K=1 model learns "
                "to copy; 2 sees velocity (docs/quality.md)"})
    residual: bool = field(default=True, metadata={
        "help": "predict the change from the last frame (an untrained model copies the last frame); "
                "false = the paper's plain tanh output"})
    norm: str = field(default="group", metadata={
        "help": "generator normalization: group (GroupNorm, the default: per-image statistics, the same in training "
                "and inference; better than batch, docs/quality.md) or batch (the paper's BatchNorm)"})
    dropout: float = field(default=0.5, metadata={
        "help": "dropout rate in the generator's three innermost decoder blocks (the paper's 0.5; the noise of a "
                "non-deterministic generation); 0 = none"})
    refine_rounds: int = field(default=0, metadata={
        "help": "anti-divergence rounds after the main phase: roll the model out and train on its own predictions "
                "(0 = off, the default: 1 and 2 scored worse one-step and at 5/10 steps on real clips, "
                "docs/quality.md)"})
    refine_fraction: float = field(default=0.2, metadata={
        "help": "share of the total steps spent in the refine rounds, split evenly between them"})
    rollout_length: int = field(default=3, metadata={
        "help": "predicted steps per rollout when building refinement pairs"})
    rollout_starts: int = field(default=64, metadata={
        "help": "random training frames rolled out per refine round"})
    refine_mix: float = field(default=0.5, metadata={
        "help": "share of each refinement batch drawn from rollout pairs (the rest are real pairs)"})
    reverse: float = field(default=0.5, metadata={
        "help": "share of the training examples played backwards (context and next frame in reverse order): the same "
                "picture then moves both ways, so the model must read the motion from its context frames instead of "
                "recalling it from what the frame shows. 0.5 (the default) kept carphone's 5- and 10-step rollouts "
                "ahead of copying with both training seeds where one of two fell 2 dB behind (docs/quality.md); "
                "0 = none"})
    input_noise: float = field(default=0.0, metadata={
        "help": "std of Gaussian noise added to the generator's input frames (in [-1, 1] units; 0 = off)"})
    unroll_steps: int = field(default=1, metadata={
        "help": "fed-back steps per training example (backprop through time): from a real context the generator "
                "predicts this many frames in a row, each fed back (rounded to 8 bits, straight-through gradient) into "
                "the context of the next, with the L1 and GAN terms against the real frames at every step (averaged) "
                "and gradients through the whole chain. 1 = one teacher-forced step (the default); N costs about N "
                "times the compute per step. Not with refine_rounds"})
    unroll_fraction: float = field(default=1.0, metadata={
        "help": "share of the total steps, at the end, trained unrolled (the phase \"unroll\"; the steps before it "
                "train one step, as with unroll_steps 1): 1 = the whole run"})
    jit_compile: str = field(default="auto", metadata={
        "help": "XLA-compile the train step: auto (on for one GPU; off for CPU, where it is slower, and for "
                "several GPUs, where XLA under MirroredStrategy is untested: true turns it on there), true, false"})
    precision: str = field(default="auto", metadata={
        "help": "compute precision: auto (bfloat16 mixed precision where the hardware has native bf16 and trains "
                "faster in it: GPUs of compute capability 8.0 or newer, CPUs with AVX512_BF16 and no AMX, at the same "
                "quality, docs/quality.md; else float32, also on CPUs with AMX, where it measured slower, "
                "docs/performance.md), float32, or bfloat16. Variables, losses and the exported generator stay "
                "float32"})
    devices: str = field(default="auto", metadata={
        "help": "devices to train on: auto (data-parallel tf.distribute.MirroredStrategy over all GPUs when more than "
                "one is visible, else the default device with no strategy), single (the default device only), gpu "
                "(MirroredStrategy over all GPUs), gpu:N or cpu:N (over the first N logical GPUs or CPUs; cpu:N needs "
                "N logical CPU devices configured, for tests), or comma-separated device names (/gpu:0,/gpu:2). "
                "multiworker (tf.distribute.MultiWorkerMirroredStrategy over the cluster that TF_CONFIG describes: "
                "what each node of a multi-node TrainJob runs). --batch-size is the global batch, split across the "
                "devices; the learning rate needs no scaling (losses are means over the global batch)"})
    train_nodes: int = field(default=1, metadata={
        "help": "nodes to train on. 1 (the default) trains in the train step's own pod; N > 1 makes the train step "
                "launch a Kubeflow Trainer TrainJob of N nodes (MultiWorkerMirroredStrategy, each node with the "
                "train step's GPUs) and wait for it: needs Kubeflow Trainer on the cluster (docs/cluster.md)"})

    @property
    def refine_steps_fraction(self) -> float:
        return self.refine_fraction if self.refine_rounds > 0 else 0.0


def _setting_checks(s: TrainSettings) -> list[tuple[bool, str]]:
    return [
        (s.batch_size >= 1, f"batch_size must be >= 1, got {s.batch_size}"),
        (s.max_steps >= 0, f"max_steps must be >= 0, got {s.max_steps}"),
        (s.max_epoch >= 0, f"max_epoch must be >= 0, got {s.max_epoch}"),
        (s.max_steps > 0 or s.max_epoch > 0, "set max_steps or max_epoch to a positive number"),
        (s.ngf >= 1 and s.ndf >= 1, f"ngf and ndf must be >= 1, got {s.ngf} and {s.ndf}"),
        (s.learning_rate > 0, f"learning_rate must be > 0, got {s.learning_rate}"),
        (0 <= s.beta1 < 1, f"beta1 must be in [0, 1), got {s.beta1}"),
        (0 <= s.ema_decay < 1, f"ema_decay must be in [0, 1), got {s.ema_decay}"),
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
        (0 <= s.reverse <= 1, f"reverse must be in [0, 1], got {s.reverse}"),
        (s.unroll_steps >= 1, f"unroll_steps must be >= 1, got {s.unroll_steps}"),
        (0 < s.unroll_fraction <= 1, f"unroll_fraction must be in (0, 1], got {s.unroll_fraction}"),
        (s.unroll_steps == 1 or s.refine_rounds == 0,
         f"unroll_steps {s.unroll_steps} and refine_rounds {s.refine_rounds} do not combine: set one of them"),
        (s.norm in ("batch", "group"), f"norm must be batch or group, got {s.norm!r}"),
        (0 <= s.dropout < 1, f"dropout must be in [0, 1), got {s.dropout}"),
        (s.train_nodes >= 1, f"train_nodes must be >= 1, got {s.train_nodes}"),
        (s.batch_size >= s.train_nodes, f"batch_size {s.batch_size} is smaller than train_nodes {s.train_nodes}: "
                                        f"the batch is the global batch, split across the nodes"),
    ]


def validate_settings(settings: TrainSettings) -> None:
    """Raise InputError (one line) for a settings value that cannot work."""
    for ok, message in _setting_checks(settings):
        if not ok:
            raise InputError(f"invalid train setting: {message}")
    resolve_jit(settings.jit_compile, on_gpu=False)  # validates the spelling
    resolve_precision(settings.precision, on_gpu=False)
    hardware.parse_devices(settings.devices)


def resolve_jit(value: Any, on_gpu: bool) -> bool:
    """:func:`videogen.hardware.resolve_jit`, its error naming the train setting."""
    try:
        return hardware.resolve_jit(value, on_gpu)
    except InputError as error:
        raise InputError(f"invalid train setting: {error}") from None


def resolve_precision(value: Any, on_gpu: bool) -> str:
    """"float32" or "bfloat16" for training: ``auto`` picks bfloat16 on GPUs of compute capability 8.0+ and on CPUs
    with native bf16 except those with AMX (:func:`videogen.hardware.resolve_precision`)."""
    try:
        if on_gpu and str(value).strip().lower() in ("auto", ""):
            return hardware.resolve_precision(value, on_gpu, gpu_native=hardware.gpu_supports_bf16())
        return hardware.resolve_precision(value, on_gpu, training=True)
    except InputError as error:
        raise InputError(f"invalid train setting: {error}") from None


def total_steps(settings: TrainSettings, num_pairs: int) -> int:
    """The step budget: ``max_steps`` if set, else ``max_epoch`` passes over the pairs (refinement included)."""
    if settings.max_steps > 0:
        return settings.max_steps
    batch = min(settings.batch_size, num_pairs)
    return settings.max_epoch * math.ceil(num_pairs / batch)


def plan_phases(settings: TrainSettings, total: int) -> list[dict]:
    """Split ``[0, total)`` into the main phase and the refine rounds (rounds of zero steps are dropped); with
    ``unroll_steps`` > 1, into the main phase and the unroll phase (its last ``unroll_fraction`` of the steps)."""
    if settings.unroll_steps > 1:
        main_end = total - int(round(total * settings.unroll_fraction))
        phases = [{"name": "main", "first_step": 0, "end_step": main_end},
                  {"name": "unroll", "first_step": main_end, "end_step": total}]
        return [p for p in phases if p["end_step"] > p["first_step"]]
    refine_total = int(total * settings.refine_steps_fraction)
    rounds = settings.refine_rounds if refine_total > 0 else 0
    per_round = refine_total // rounds if rounds else 0
    main_end = total - per_round * rounds
    phases = [{"name": "main", "first_step": 0, "end_step": main_end}]
    for r in range(rounds if per_round else 0):
        first = main_end + r * per_round
        phases.append({"name": f"refine{r + 1}", "first_step": first, "end_step": first + per_round})
    return [p for p in phases if p["end_step"] > p["first_step"]]
