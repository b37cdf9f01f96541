"""Stage "generate": roll a trained next-frame generator out autoregressively from start frames.

Reads a model dir (``generator.keras`` + ``model.json``) and a start: the dataset dir's ``start_frame`` (plus further
validation frames for ``num_videos`` > 1) or a start image. Writes the generated dir (docs/design.md):
``frames.npy`` uint8 ``(T, V, S, S, 3)``, time-major, written as a stream (header first, then frame bytes appended, so
memory stays flat however long the video), and ``generation.json``.

The model is loaded once; each step is one fixed-shape ``tf.function`` that takes the uint8 context window, predicts
the next frame, converts it back to uint8 and shifts the window, all in-graph, so only uint8 frames cross to the host.
Dropout stays on at inference by default, as in pix2pix (it is the generator's only noise); BatchNorm always runs on
its moving statistics, which makes it a per-channel affine that is folded into the preceding convolution (exact).

Speed on the 2-core AMD EPYC (Zen 4) dev box, 256 px, ngf 64, ms/frame (medians, bench/results.json has the full runs):
see ``_choose_jit`` and ``_fold_batchnorm`` for what each measured idea gave.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from videogen.errors import InputError

log = logging.getLogger("videogen.generate")

GENERATOR_FILE = "generator.keras"
MODEL_INFO_FILE = "model.json"
FRAMES_FILE = "frames.npy"
GENERATION_FILE = "generation.json"
PROGRESS_FILE = "progress.json"
_BF16_POLICY = os.environ.get("VIDEOGEN_BF16_POLICY", "bfloat16")


@dataclasses.dataclass(frozen=True)
class GenerateSettings:
    """Settings of the generate stage (field names are the CLI flags and component parameters)."""

    frames: int = dataclasses.field(
        default=2000, metadata={"help": "frames to generate per video (the start frame is not counted)"})
    num_videos: int = dataclasses.field(
        default=1, metadata={"help": "K rollouts in one batch from K start frames: the dataset's start_frame, then "
                                     "further validation frames drawn from --seed"})
    fps: float = dataclasses.field(
        default=0.0, metadata={"help": "frame rate recorded for the video; 0 = the model's (source) fps"})
    deterministic: bool = dataclasses.field(
        default=False, metadata={"help": "turn dropout off (by default it stays on as in pix2pix: the only noise)"})
    seed: int = dataclasses.field(
        default=0, metadata={"help": "seed for the dropout noise and the choice of extra start frames"})
    jit_compile: str = dataclasses.field(
        default="auto", metadata={"help": "XLA-compile the rollout step: auto (on GPU only, where it measured "
                                          "faster), true or false"})
    precision: str = dataclasses.field(
        default="auto", metadata={"help": "auto (bfloat16 on GPUs and on CPUs with AVX512_BF16/AMX, else float32), "
                                          "float32 or bfloat16 (the residual path stays float32; one step differs "
                                          "from float32 by at most 1 uint8 level)"})
    chunk_frames: int = dataclasses.field(
        default=50, metadata={"help": "frames per flushed chunk of the output (and of the resume progress file)"})


# ----------------------------------------------------------------------------------------------------------------------
# Model loading and the inference copy


def _keras_major() -> int:
    import keras

    return int(str(keras.__version__).split(".")[0])


class SavedModelGenerator:
    """The generator served from ``generator_savedmodel/`` (see videogen/export.py).

    Used where the installed Keras is older than 3 and cannot read ``generator.keras``: the K80 image (TensorFlow
    2.14, the last CUDA 11 line with Kepler kernels). Called like the Keras model; ``training`` picks the endpoint
    (dropout on or off), and BatchNorm always runs on its moving statistics, as in the Keras path.
    """

    layers: list = []  # nothing to fold or reseed: dropout noise comes from the SavedModel's own RNG

    def __init__(self, model_dir: Path, image_size: int, context_frames: int):
        from videogen.export import load_savedmodel

        self.input_shape = (None, image_size, image_size, 3 * context_frames)
        self._serve = load_savedmodel(model_dir, dropout=False)
        self._serve_dropout = load_savedmodel(model_dir, dropout=True)

    def __call__(self, frames, training: bool = False):
        return (self._serve_dropout if training else self._serve)(frames)


def load_generator(model_dir: Path | str):
    """Load ``generator.keras`` (once) and ``model.json`` from a model dir.

    Returns:
        ``(model, model_info)``: the Keras model as saved and the parsed ``model.json``.

    Raises:
        InputError: the dir, either file, or the model in it is missing or unusable.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"model dir {model_dir} does not exist: pass the output dir of `videogen train`")
    info_path = model_dir / MODEL_INFO_FILE
    model_path = model_dir / GENERATOR_FILE
    for path in (info_path, model_path):
        if not path.is_file():
            raise InputError(f"{path} is missing: {model_dir} is not a trained model dir (run `videogen train`)")
    try:
        model_info = json.loads(info_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{info_path} is not valid JSON ({err}): re-run `videogen train`") from err
    if not isinstance(model_info, dict):
        raise InputError(f"{info_path} does not hold a JSON object: re-run `videogen train`")
    if _keras_major() < 3:
        from videogen.export import SAVEDMODEL_DIR

        if not (model_dir / SAVEDMODEL_DIR / "saved_model.pb").is_file():
            raise InputError(f"Keras {_keras_major()} cannot read {model_path} and {model_dir / SAVEDMODEL_DIR} is "
                             "missing: re-run `videogen train` with this version of videogen")
        log.info("Keras < 3: serving %s instead of %s", SAVEDMODEL_DIR, GENERATOR_FILE)
        return SavedModelGenerator(model_dir, int(model_info["image_size"]),
                                   int(model_info.get("context_frames", 1))), model_info
    import keras

    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors... for a bad file
        raise InputError(f"{model_path} could not be loaded ({type(err).__name__}: {err}); re-run `videogen train`") \
            from err
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] % 3:
        raise InputError(f"{model_path} has input shape {shape}, not (B, S, S, 3K): not a videogen generator")
    image_size = int(model_info.get("image_size", shape[1]))
    if image_size != shape[1]:
        raise InputError(f"{info_path} says image_size {image_size} but the model takes {shape[1]} px")
    return model, model_info


def _rewire(obj, renames: dict[str, str]):
    """Replace ``keras_history`` layer names in a functional config's inbound node args."""
    if isinstance(obj, dict):
        out = {k: _rewire(v, renames) for k, v in obj.items()}
        history = out.get("keras_history")
        if isinstance(history, (list, tuple)) and history and history[0] in renames:
            out["keras_history"] = [renames[history[0]], *history[1:]]
        return out
    if isinstance(obj, (list, tuple)):  # get_config() holds tuples as well as lists
        return type(obj)(_rewire(v, renames) for v in obj)
    return obj


def _output_names(config: dict) -> list[str]:
    """Names of the layers a functional config lists as its outputs."""
    outputs = config.get("output_layers", [])
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    return [entry[0] for entry in outputs if isinstance(entry, (list, tuple)) and entry]


def _inbound_names(layer_config: dict) -> list[str]:
    names: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            history = obj.get("keras_history")
            if isinstance(history, (list, tuple)) and history:
                names.append(history[0])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(layer_config.get("inbound_nodes", []))
    return names


def inference_copy(model, precision: str = "float32"):
    """An inference copy of a functional generator with every BatchNormalization folded into the convolution before it.

    At inference BatchNorm uses its moving statistics, so ``bn(conv(x)) = conv(x) * s + (beta - mean * s)`` with
    ``s = gamma / sqrt(var + eps)``: scaling the conv kernel's output channels by ``s`` and adding that bias is exact up
    to float rounding. Dropout layers stay (they are the noise). Layers are all built-in, so the copy is an ordinary
    ``keras.Model``. A BN whose input is not a single-use Conv2D/Conv2DTranspose is kept (running in inference mode).

    Measured (2-core Zen 4, 256 px ngf 64, batch 1, tf.function, float32): 220 ms/frame with frozen BN layers vs 218
    folded (oneDNN already fuses most of it; the win is fewer ops, and bf16 below); max abs diff 2.4e-7.

    Args:
        model: the loaded generator.
        precision: "float32" or "bfloat16" (compute dtype of the copy; weights stay float32, outputs float32).
    """
    import keras

    config = model.get_config()
    layers_cfg = config["layers"]
    by_name = {cfg["name"] if "name" in cfg else cfg["config"]["name"]: cfg for cfg in layers_cfg}
    consumers: dict[str, int] = {}
    consumer_names: dict[str, list[str]] = {}
    for cfg in layers_cfg:
        for name in _inbound_names(cfg):
            consumers[name] = consumers.get(name, 0) + 1
            consumer_names.setdefault(name, []).append(cfg["config"]["name"])

    folds: dict[str, str] = {}  # bn name -> conv name
    for cfg in layers_cfg:
        if cfg["class_name"] != "BatchNormalization":
            continue
        bn_cfg = cfg["config"]
        axis = bn_cfg.get("axis", -1)
        if axis not in (-1, 3, [3], [-1]) or bn_cfg.get("renorm", False):
            continue
        inbound = _inbound_names(cfg)
        if len(inbound) != 1:
            continue
        src = by_name.get(inbound[0])
        if src is None or src["class_name"] not in ("Conv2D", "Conv2DTranspose") or consumers.get(inbound[0]) != 1:
            continue
        if src["config"].get("activation", "linear") not in ("linear", None):
            continue
        folds[cfg["config"]["name"]] = inbound[0]

    # GroupNormalization (+ the ReLU/LeakyReLU that is its only consumer) -> one XLA-fused layer (videogen/fused.py).
    # TensorFlow backend only (bench/gpu.py runs this copy on JAX, whose jit fuses it anyway).
    fused_gn: dict[str, tuple[str, float]] = {}  # gn name -> (activation, negative slope)
    act_folds: dict[str, str] = {}  # activation name -> gn name
    if keras.backend.backend() == "tensorflow":
        from videogen.fused import fusable_activation

        for cfg in layers_cfg:
            if cfg["class_name"] != "GroupNormalization" or cfg["config"].get("axis", -1) not in (-1, 3):
                continue
            name = cfg["config"]["name"]
            fused_gn[name] = ("linear", 0.0)
            after = consumer_names.get(name, [])
            if len(after) == 1 and after[0] not in _output_names(config):
                activation = fusable_activation(by_name[after[0]])
                if activation:
                    fused_gn[name] = activation
                    act_folds[after[0]] = name
    renames = {**folds, **act_folds}

    # bfloat16: a layer computes in bf16 if it is a trained convolution or all its inputs are bf16; so the residual
    # path (input frame + predicted change, clip) stays float32 and an untrained model still copies frames exactly.
    # Weights are stored in bf16 ("bfloat16" policy): "mixed_bfloat16" re-cast all 54M weights every call and
    # measured 118 vs 115 ms/frame at batch 1 (256 px, 2-core Zen 4; float32: 218-264). One step vs float32: max abs
    # diff 1 uint8 level, mean 0.03 (random weights with trained-like BN statistics).
    low: set[str] = set()
    new_layers = []
    for cfg in layers_cfg:
        name = cfg["config"]["name"]
        if name in folds or name in act_folds:
            continue
        cfg = _rewire(cfg, renames)
        if name in fused_gn:
            cfg = json.loads(json.dumps(cfg))
            cfg.update(class_name="FusedGroupNormAct", module=None, registered_name="FusedGroupNormAct")
            cfg["config"]["activation"], cfg["config"]["negative_slope"] = fused_gn[name]
        if name in folds.values():
            cfg = json.loads(json.dumps(cfg))
            cfg["config"]["use_bias"] = True
            cfg["config"]["bias_initializer"] = {"module": "keras.initializers", "class_name": "Zeros",
                                                 "config": {}, "registered_name": None}
        inbound = _inbound_names(cfg)
        trained_conv = cfg["class_name"] in ("Conv2D", "Conv2DTranspose") and cfg["config"].get("trainable", True)
        if precision == "bfloat16" and cfg["class_name"] != "InputLayer" and (
                trained_conv or (inbound and all(n in low for n in (renames.get(i, i) for i in inbound)))):
            low.add(name)
            cfg = json.loads(json.dumps(cfg))
            cfg["config"]["dtype"] = {"module": "keras", "class_name": "DTypePolicy",
                                      "config": {"name": _BF16_POLICY}, "registered_name": None}
        new_layers.append(cfg)
    new_config = dict(config)
    new_config["layers"] = new_layers
    new_config["output_layers"] = _rewire(config["output_layers"], renames)
    new_config["name"] = f"{config.get('name', 'generator')}_inference"
    custom = {}
    if fused_gn:
        from videogen.fused import FusedGroupNormAct

        custom["FusedGroupNormAct"] = FusedGroupNormAct
    copy = keras.Model.from_config(new_config, custom_objects=custom)

    conv_of = {conv: bn for bn, conv in folds.items()}
    for layer in copy.layers:
        src = model.get_layer(layer.name)
        weights = src.get_weights()
        if layer.name in conv_of:
            bn = model.get_layer(conv_of[layer.name])
            bn_weights = dict(zip([w.path.split("/")[-1] for w in bn.weights], bn.get_weights()))
            channels = bn_weights["moving_mean"].shape[0]
            gamma = bn_weights.get("gamma", np.ones(channels, np.float32))
            beta = bn_weights.get("beta", np.zeros(channels, np.float32))
            scale = gamma / np.sqrt(bn_weights["moving_variance"] + bn.epsilon)
            kernel = weights[0].astype(np.float64)
            bias = weights[1].astype(np.float64) if len(weights) > 1 else np.zeros(channels)
            if isinstance(src, keras.layers.Conv2DTranspose):
                kernel = kernel * scale[None, None, :, None]  # kernel (kh, kw, out, in)
            else:
                kernel = kernel * scale  # kernel (kh, kw, in, out)
            bias = (bias - bn_weights["moving_mean"]) * scale + beta
            weights = [kernel.astype(np.float32), bias.astype(np.float32)]
        if weights:
            layer.set_weights(weights)
    return copy


def _dropout_layers(model):
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


def _seed_dropout(model, seed: int, steps_done: int) -> None:
    """Put every Dropout layer's seed generator at the state it has after ``steps_done`` steps from ``seed``.

    Each Dropout draws one seed per call ([layer_seed, counter], the counter advancing by 1), so a resumed rollout
    continues with exactly the noise an uninterrupted one would have drawn.
    """
    for index, layer in enumerate(_dropout_layers(model)):
        layer_seed = (seed * 1000003 + index * 7919 + 1) % (2**31 - 1)
        layer.seed_generator.state.assign(np.array([layer_seed, steps_done], dtype=np.uint32).astype(
            layer.seed_generator.state.dtype))


# ----------------------------------------------------------------------------------------------------------------------
# Device


def _nvidia_smi_gpus() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def detect_device() -> tuple[str, bool]:
    """``(description, on_gpu)`` of the device TensorFlow will run the rollout on.

    A GPU that TensorFlow cannot use (e.g. a K80, compute capability 3.7, with TensorFlow's CUDA 12 build, or a CPU-only
    TensorFlow on a GPU node) is reported with a warning and generation falls back to the CPU instead of failing.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", gpus[0].name)
            cc = details.get("compute_capability")
            if cc:
                name = f"{name} (compute capability {cc[0]}.{cc[1]})"
        except Exception:  # details are informational only
            name = gpus[0].name
        return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""), True
    seen = _nvidia_smi_gpus()
    if seen:
        log.warning("GPU present (%s) but TensorFlow cannot use it (CPU-only build, or a GPU too old for its CUDA "
                    "build, e.g. a K80 with CUDA 12); generating on the CPU", ", ".join(seen))
    import platform

    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores", False


def _resolve_jit(setting: str | bool, on_gpu: bool) -> bool:
    """XLA for the rollout step. Measured on the 2-core Zen 4 box, 256 px ngf 64 batch 1: XLA 369 ms vs 276 ms
    without (FACTS.md), so "auto" keeps it off on CPU and on for GPUs (fused elementwise ops after each conv)."""
    value = str(setting).strip().lower()
    if value in ("auto", ""):
        return on_gpu
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InputError(f"jit_compile must be auto, true or false, got {setting!r}")


# ----------------------------------------------------------------------------------------------------------------------
# Rollout


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _resolve_precision(setting: str, on_gpu: bool) -> str:
    """"auto": bfloat16 where the hardware computes it natively. On the 2-core Zen 4 (AVX512_BF16), 256 px ngf 64:
    115 vs 218 ms/frame at batch 1, 70 vs 132 at batch 8."""
    value = str(setting).strip().lower()
    if value in ("auto", ""):
        return "bfloat16" if on_gpu or _cpu_has_bf16() else "float32"
    if value in ("float32", "fp32"):
        return "float32"
    if value in ("bfloat16", "bf16"):
        return "bfloat16"
    raise InputError(f"precision must be auto, float32 or bfloat16, got {setting!r}")


def make_step(model, context_frames: int, deterministic: bool, jit_compile: bool = False):
    """The fixed-shape rollout step: ``(context uint8 (V,S,S,3K)) -> (next context, frame uint8 (V,S,S,3))``.

    uint8 -> [-1, 1] float and back happen in-graph, so the host only ever holds uint8 frames.
    """
    import tensorflow as tf

    training = not deterministic

    def step(context):
        x = tf.cast(context, tf.float32) * (1.0 / 127.5) - 1.0
        y = tf.cast(model(x, training=training), tf.float32)
        frame = tf.cast(tf.clip_by_value(tf.round((y + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
        if context_frames > 1:
            context = tf.concat([context[..., 3:], frame], axis=-1)
        else:
            context = frame
        return context, frame

    return tf.function(step, jit_compile=jit_compile, reduce_retracing=False)


def rollout(model, start_frames_uint8: np.ndarray, n: int, context_frames: int = 1, deterministic: bool = False,
            seed: int = 0, *, jit_compile: bool = False, steps_done: int = 0, step_fn=None) -> Iterator[np.ndarray]:
    """Autoregressive rollout: yield ``n`` predicted frames, uint8 ``(V, S, S, 3)`` each.

    Args:
        model: a generator (ideally :func:`inference_copy` of it: BN folded; BN layers otherwise must be frozen).
        start_frames_uint8: ``(V, S, S, 3K)`` (the last K frames of each video stacked oldest first on channels) or,
            for K = 1, ``(V, S, S, 3)``.
        n: frames to produce.
        context_frames: K.
        deterministic: dropout off.
        seed: dropout noise seed (same seed, same frames).
        jit_compile: XLA-compile the step.
        steps_done: frames already produced earlier by the same rollout (resume): the noise continues from there.
        step_fn: a step from :func:`make_step` to reuse (skips retracing).
    """
    import tensorflow as tf

    start = np.asarray(start_frames_uint8)
    if start.dtype != np.uint8 or start.ndim != 4 or start.shape[-1] != 3 * context_frames:
        raise ValueError(f"start frames must be uint8 (V, S, S, {3 * context_frames}), got {start.dtype} {start.shape}")
    _freeze_batchnorm(model)
    if not deterministic:
        _seed_dropout(model, seed, steps_done)
    step = step_fn or make_step(model, context_frames, deterministic, jit_compile)
    context = tf.constant(start)
    for _ in range(n):
        context, frame = step(context)
        yield frame.numpy()


def _freeze_batchnorm(model) -> None:
    """Keras 3 runs BatchNormalization on its moving statistics when ``trainable`` is False, even under
    ``training=True`` (``if training and self.trainable``), so dropout can be on while BN stays in inference mode."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


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
        raise InputError(f"dataset start_frame {first} is out of range for {num_frames} frames: re-run prepare")
    candidates = [i for i in range(lo, max(hi, lo + 1)) if i != first and i < num_frames]
    rng = np.random.default_rng(seed)
    extra = num_videos - 1
    if extra <= 0:
        return [first]
    if not candidates:
        candidates = [first]
    picks = rng.choice(candidates, size=extra, replace=extra > len(candidates))
    return [first, *(int(i) for i in picks)]


def _start_context(dataset_dir: Path | None, start_image: Path | None, image_size: int, context_frames: int,
                   num_videos: int, seed: int) -> tuple[np.ndarray, list]:
    """``(context uint8 (V,S,S,3K), start description)``."""
    if start_image is not None:
        img = load_start_image(start_image, image_size)
        context = np.concatenate([img] * context_frames, axis=-1)
        return np.repeat(context[None], num_videos, axis=0), [str(start_image)] * num_videos
    if dataset_dir is None:
        raise InputError("generation needs a start: pass a dataset dir (--dataset) or a start image (--start-image)")
    from videogen.dataset import load_dataset

    frames, info = load_dataset(Path(dataset_dir))
    if frames.ndim != 4 or frames.shape[1:] != (image_size, image_size, 3) or frames.dtype != np.uint8:
        raise InputError(f"dataset frames are {frames.dtype} {frames.shape} but the model takes {image_size} px: "
                         f"prepare the dataset with --image-size {image_size}")
    starts = choose_start_frames(info, frames.shape[0], num_videos, context_frames, seed)
    context = np.stack([np.concatenate(list(frames[i - context_frames + 1:i + 1]), axis=-1) for i in starts])
    return np.ascontiguousarray(context), starts


# ----------------------------------------------------------------------------------------------------------------------
# Streaming .npy writer (with resume)


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy v1.0 header for a C-order uint8 array of ``shape`` (padded to 64 bytes, as numpy writes it)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


class _StreamWriter:
    """Appends frames to an .npy file from a writer thread (bounded queue), flushing every ``chunk`` frames and then
    calling ``on_flush(frames_done)``, so compute overlaps with disk writes and memory stays at a few frames."""

    def __init__(self, path: Path, shape: tuple[int, ...], frames_done: int, chunk: int,
                 on_flush: Callable[[int], None]):
        header = npy_header(shape)
        frame_bytes = int(np.prod(shape[1:]))
        mode = "r+b" if frames_done and path.exists() else "wb"
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
            while True:
                frame = self._queue.get()
                if frame is None:
                    break
                self._file.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
                pending += 1
                if pending >= self._chunk:
                    self._flush(pending)
                    pending = 0
            if pending:
                self._flush(pending)
        except BaseException as err:  # surfaced in put()/close()
            self._error = err
            while True:  # keep draining so put() never blocks forever
                if self._queue.get() is None:
                    break

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


def _atomic_json(path: Path, content: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _model_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (GENERATOR_FILE, MODEL_INFO_FILE):
        stat = (model_dir / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------------
# The stage


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
        self.jit = _resolve_jit(settings.jit_compile, on_gpu)
        self.precision = _resolve_precision(settings.precision, on_gpu)
        model, self.model_info = load_generator(self.model_dir)
        self.image_size = int(model.input_shape[1])
        self.context_frames = int(model.input_shape[3]) // 3
        if isinstance(model, SavedModelGenerator):
            # The K80 image: a float32 graph as exported; Kepler has no bf16 and XLA is not worth the risk there.
            self.jit, self.precision, self.model = False, "float32", model
        else:
            self.model = inference_copy(model, self.precision)
        self.context, self.start_frames = _start_context(
            Path(dataset_dir) if dataset_dir else None, Path(start_image) if start_image else None,
            self.image_size, self.context_frames, settings.num_videos, settings.seed)
        self.fps = float(settings.fps or self.model_info.get("fps") or 0.0)
        if not self.fps and dataset_dir is not None:
            try:
                self.fps = float(json.loads((Path(dataset_dir) / "dataset.json").read_text()).get("fps") or 0.0)
            except (OSError, ValueError):
                pass
        self.fps = self.fps or 25.0
        self.shape = (settings.frames, settings.num_videos, self.image_size, self.image_size, 3)
        log.info("generating %d frames x %d video(s) at %d px on %s (XLA %s, %s, dropout %s)", settings.frames,
                 settings.num_videos, self.image_size, self.device, "on" if self.jit else "off", self.precision,
                 "off" if settings.deterministic else "on")

    def key(self) -> dict:
        """What must match for a partial run to be continued."""
        s = self.settings
        return {"model": _model_fingerprint(self.model_dir), "frames": s.frames, "num_videos": s.num_videos,
                "deterministic": s.deterministic, "seed": s.seed, "precision": self.precision,
                "start_frames": self.start_frames, "image_size": self.image_size,
                "context_sha": hashlib.sha256(self.context.tobytes()).hexdigest()[:16]}

    def frames(self, steps_done: int = 0, context: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Yield the remaining frames with progress logs (frame i/T, frames/s, ETA)."""
        s = self.settings
        total = s.frames
        t0 = time.perf_counter()
        last_log = t0
        produced = 0
        ctx = self.context if context is None else context
        for frame in rollout(self.model, ctx, total - steps_done, self.context_frames, s.deterministic, s.seed,
                             jit_compile=self.jit, steps_done=steps_done):
            produced += 1
            yield frame
            now = time.perf_counter()
            done = steps_done + produced
            if now - last_log >= 5.0 or done == total:
                rate = produced / (now - t0)
                eta = (total - done) / rate if rate > 0 else float("nan")
                log.info("frame %d/%d, %.2f frames/s (x%d videos), ETA %.0f s", done, total, rate, s.num_videos, eta)
                last_log = now
        self.elapsed = time.perf_counter() - t0
        self.produced = produced

    def info(self, duration_s: float, produced: int) -> dict:
        s = self.settings
        return {"frames": s.frames, "num_videos": s.num_videos, "fps": self.fps, "image_size": self.image_size,
                "context_frames": self.context_frames, "start_frames": self.start_frames,
                "deterministic": s.deterministic, "seed": s.seed, "device": self.device, "jit_compile": self.jit,
                "precision": self.precision, "frames_per_s": round(produced / duration_s, 3) if duration_s > 0 else None,
                "total_frames_per_s": round(produced * s.num_videos / duration_s, 3) if duration_s > 0 else None,
                "duration_s": round(duration_s, 3), "settings": dataclasses.asdict(s)}


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
    frames_path = work_dir / FRAMES_FILE
    progress_path = work_dir / PROGRESS_FILE
    key = gen.key()
    frame_bytes = int(np.prod(gen.shape[1:]))
    header_len = len(npy_header(gen.shape))

    steps_done, context = 0, None
    previous_s = 0.0
    if resume_dir and progress_path.is_file() and frames_path.is_file():
        try:
            progress = json.loads(progress_path.read_text())
        except (OSError, ValueError):
            progress = {}
        done = int(progress.get("frames_done", 0))
        if progress.get("key") == key and 0 < done and frames_path.stat().st_size >= header_len + done * frame_bytes:
            steps_done = min(done, settings.frames)
            previous_s = float(progress.get("duration_s", 0.0))
            k = gen.context_frames
            recent = []
            with open(frames_path, "rb") as f:  # a partial file: shorter than its header's final shape says
                for t in range(max(0, steps_done - k), steps_done):
                    f.seek(header_len + t * frame_bytes)
                    recent.append(np.frombuffer(f.read(frame_bytes), np.uint8).reshape(gen.shape[1:]))
            if len(recent) < k:  # fewer generated frames than the context: the start context supplies the rest
                start = [gen.context[..., 3 * i:3 * i + 3] for i in range(k)]
                recent = (start + recent)[-k:]
            context = np.ascontiguousarray(np.concatenate(recent, axis=-1))
            log.info("resumed at frame %d/%d from %s", steps_done, settings.frames, work_dir)
        elif progress:
            log.info("partial generation in %s has other settings: starting over", work_dir)

    t0 = time.perf_counter()

    def on_flush(done: int) -> None:
        if resume_dir:
            _atomic_json(progress_path, {"key": key, "frames_done": done,
                                         "duration_s": previous_s + time.perf_counter() - t0})

    if steps_done < settings.frames:
        writer = _StreamWriter(frames_path, gen.shape, steps_done, settings.chunk_frames, on_flush)
        try:
            for frame in gen.frames(steps_done, context):
                writer.put(frame)
        finally:
            writer.close()
    produced = settings.frames - steps_done
    duration = time.perf_counter() - t0
    info = gen.info(duration, produced)
    info["resumed_at_frame"] = steps_done
    info["duration_s"] = round(previous_s + duration, 3)

    if work_dir != output_dir:
        dest = output_dir / FRAMES_FILE
        try:
            os.replace(frames_path, dest)
        except OSError:  # another filesystem
            shutil.copyfile(frames_path, dest)
            frames_path.unlink()
        progress_path.unlink(missing_ok=True)
    _atomic_json(output_dir / GENERATION_FILE, info)
    log.info("wrote %s (%d frames x %d videos, %.2f frames/s on %s)", output_dir / FRAMES_FILE, settings.frames,
             settings.num_videos, info["frames_per_s"] or 0.0, gen.device)
    return info
