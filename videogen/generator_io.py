"""Loading a trained generator from a model dir, and the fast inference copy generation runs.

Reads ``generator.keras`` and ``model.json`` (or, where the installed Keras is older than 3, ``generator_savedmodel/``,
see videogen/export.py). :func:`inference_copy` rewrites the functional Keras config of the generator: every
BatchNormalization folded into the convolution before it, every GroupNormalization (+ its activation) replaced by the
XLA-fused ``FusedGroupNormAct``, and optionally the convolutions and everything fed only by them in bfloat16.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from videogen import artifacts
from videogen.errors import InputError
from videogen.model import custom_objects

log = logging.getLogger("videogen.generate")

_CONVS = ("Conv2D", "Conv2DTranspose")


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


def _load_savedmodel(model: artifacts.ModelDir) -> SavedModelGenerator:
    if not (model.savedmodel_dir / "saved_model.pb").is_file():
        raise InputError(f"Keras {_keras_major()} cannot read {model.generator_path} and {model.savedmodel_dir} is "
                         "missing: re-run `videogen train` with this version of videogen")
    log.info("Keras < 3: serving %s instead of %s", artifacts.SAVEDMODEL_DIR, artifacts.GENERATOR_FILE)
    return SavedModelGenerator(model.dir, int(model.info["image_size"]), int(model.info.get("context_frames", 1)))


def load_generator(model_dir: Path | str):
    """Load ``generator.keras`` (once) and ``model.json`` from a model dir.

    Returns:
        ``(model, model_info)``: the Keras model as saved and the parsed ``model.json``.

    Raises:
        InputError: the dir, either file, or the model in it is missing or unusable.
    """
    model = artifacts.open_model_dir(Path(model_dir))
    if _keras_major() < 3:
        return _load_savedmodel(model), model.info
    import keras

    path = model.generator_path
    try:
        generator = keras.models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors... for a bad file
        raise InputError(f"{path} could not be loaded ({type(err).__name__}: {err}); re-run `videogen train`") \
            from err
    shape = tuple(generator.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] % 3:
        raise InputError(f"{path} has input shape {shape}, not (B, S, S, 3K): not a videogen generator")
    image_size = int(model.info.get("image_size", shape[1]))
    if image_size != shape[1]:
        raise InputError(f"{model.info_path} says image_size {image_size} but the model takes {shape[1]} px")
    return generator, model.info


# ------------------------------------------------------------------------------------------- functional config surgery
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


class _Graph:
    """The layers of a functional config by name, and who consumes each."""

    def __init__(self, config: dict):
        self.config = config
        self.layers = config["layers"]
        self.by_name = {cfg["name"] if "name" in cfg else cfg["config"]["name"]: cfg for cfg in self.layers}
        self.consumers: dict[str, list[str]] = {}
        for cfg in self.layers:
            for name in _inbound_names(cfg):
                self.consumers.setdefault(name, []).append(cfg["config"]["name"])


def _foldable_source(graph: _Graph, bn: dict) -> str | None:
    """The conv a BatchNormalization can be folded into: its only input, a linear Conv2D(Transpose) used once."""
    bn_cfg = bn["config"]
    if bn_cfg.get("axis", -1) not in (-1, 3, [3], [-1]) or bn_cfg.get("renorm", False):
        return None
    inbound = _inbound_names(bn)
    if len(inbound) != 1:
        return None
    src = graph.by_name.get(inbound[0])
    if src is None or src["class_name"] not in _CONVS or len(graph.consumers.get(inbound[0], [])) != 1:
        return None
    if src["config"].get("activation", "linear") not in ("linear", None):
        return None
    return inbound[0]


def _batchnorm_folds(graph: _Graph) -> dict[str, str]:
    """BatchNorm name -> the conv it folds into."""
    folds = {}
    for cfg in graph.layers:
        if cfg["class_name"] == "BatchNormalization" and (src := _foldable_source(graph, cfg)):
            folds[cfg["config"]["name"]] = src
    return folds


def _groupnorm_fusions(graph: _Graph) -> tuple[dict[str, tuple[str, float]], dict[str, str]]:
    """``({groupnorm name: (activation, negative slope)}, {folded activation name: groupnorm name})``.

    TensorFlow backend only (bench/gpu.py runs the copy on JAX, whose jit fuses it anyway)."""
    import keras

    fused: dict[str, tuple[str, float]] = {}
    act_folds: dict[str, str] = {}
    if keras.backend.backend() != "tensorflow":
        return fused, act_folds
    from videogen.fused import fusable_activation

    outputs = _output_names(graph.config)
    for cfg in graph.layers:
        if cfg["class_name"] != "GroupNormalization" or cfg["config"].get("axis", -1) not in (-1, 3):
            continue
        name = cfg["config"]["name"]
        fused[name] = ("linear", 0.0)
        after = graph.consumers.get(name, [])
        if len(after) == 1 and after[0] not in outputs and (activation := fusable_activation(graph.by_name[after[0]])):
            fused[name] = activation
            act_folds[after[0]] = name
    return fused, act_folds


def _copy(cfg: dict) -> dict:
    return json.loads(json.dumps(cfg))


def _rewrite_layer(cfg: dict, fused: dict, conv_targets: set, renames: dict, low: set, precision: str,
                   phased: frozenset = frozenset()) -> dict:
    """One layer's config in the inference copy (``low`` collects the layers that compute in bfloat16; the transposed
    convolutions named in ``phased`` become :class:`videogen.fused.PhaseConv2DTranspose`)."""
    name = cfg["config"]["name"]
    cfg = _rewire(cfg, renames)
    if name in fused:
        cfg = _copy(cfg)
        cfg.update(class_name="FusedGroupNormAct", module=None, registered_name="FusedGroupNormAct")
        cfg["config"]["activation"], cfg["config"]["negative_slope"] = fused[name]
    if name in conv_targets:
        cfg = _copy(cfg)
        cfg["config"]["use_bias"] = True
        cfg["config"]["bias_initializer"] = {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                             "registered_name": None}
    # bfloat16: a layer computes in bf16 if it is a trained convolution or all its inputs are bf16, so the residual
    # path (input frame + predicted change, clip) stays float32 and an untrained model still copies frames exactly.
    # The weights are stored in bf16 too ("bfloat16" policy): "mixed_bfloat16" would re-cast every weight each call.
    inbound = [renames.get(i, i) for i in _inbound_names(cfg)]
    trained_conv = cfg["class_name"] in _CONVS and cfg["config"].get("trainable", True)
    if precision == "bfloat16" and cfg["class_name"] != "InputLayer" and (
            trained_conv or (inbound and all(n in low for n in inbound))):
        low.add(name)
        cfg = _copy(cfg)
        cfg["config"]["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "bfloat16"},
                                  "registered_name": None}
    if name in phased:
        cfg = _copy(cfg)
        cfg.update(class_name="PhaseConv2DTranspose", module=None, registered_name="PhaseConv2DTranspose")
    return cfg


def _folded_weights(model, conv, bn_name: str, weights: list) -> list:
    """A conv's kernel and bias with the BatchNorm after it folded in: ``bn(conv(x)) = conv(x) * s + (beta - mean * s)``
    with ``s = gamma / sqrt(var + eps)``, exact up to float rounding."""
    import keras

    bn = model.get_layer(bn_name)
    bn_weights = dict(zip([w.path.split("/")[-1] for w in bn.weights], bn.get_weights()))
    channels = bn_weights["moving_mean"].shape[0]
    gamma = bn_weights.get("gamma", np.ones(channels, np.float32))
    beta = bn_weights.get("beta", np.zeros(channels, np.float32))
    scale = gamma / np.sqrt(bn_weights["moving_variance"] + bn.epsilon)
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if len(weights) > 1 else np.zeros(channels)
    if isinstance(conv, keras.layers.Conv2DTranspose):
        kernel = kernel * scale[None, None, :, None]  # kernel (kh, kw, out, in)
    else:
        kernel = kernel * scale  # kernel (kh, kw, in, out)
    bias = (bias - bn_weights["moving_mean"]) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]


# Transposed convolutions on inputs up to this size run as PhaseConv2DTranspose: faster there (the weight reorder it
# saves is most of their time), slower on larger inputs, where the one big transposed convolution is more efficient
# (bench/layers.py at 256 px, ngf 64, float32 on AVX2: 1x1..8x8 inputs 2.0-4.7x faster, 16x16 and up 1.4-3.8x slower;
# generation end to end 1.18x at K=1 and 1.08x at K=8, 2026-11-30).
PHASE_MAX_INPUT = 8


def _phased_deconvs(model, graph: _Graph) -> frozenset:
    """Names of the transposed convolutions that run as PhaseConv2DTranspose in the inference copy."""
    from videogen.fused import phase_convertible

    names = set()
    for cfg in graph.layers:
        name = cfg["config"]["name"]
        if phase_convertible(cfg):
            shape = model.get_layer(name).input.shape
            if shape[1] is not None and max(shape[1], shape[2]) <= PHASE_MAX_INPUT:
                names.add(name)
    return frozenset(names)


def inference_copy(model, precision: str = "float32"):
    """An inference copy of a functional generator: BatchNorms folded into the convolutions before them,
    GroupNorm + activation fused, in float32 the inner transposed convolutions as four phase convolutions
    (:class:`videogen.fused.PhaseConv2DTranspose`), optionally bfloat16.

    At inference BatchNorm uses its moving statistics, so it is a per-channel affine that folds into the preceding
    convolution exactly (a BN whose input is not a single-use linear Conv2D/Conv2DTranspose is kept, running in
    inference mode). Dropout layers stay (they are the noise). The copy lives in memory only and is never saved.

    Args:
        model: the loaded generator.
        precision: "float32" or "bfloat16" (compute dtype of the copy; its inputs and outputs stay float32).
    """
    import keras

    from videogen.fused import FusedGroupNormAct, PhaseConv2DTranspose, phase_kernels

    config = model.get_config()
    graph = _Graph(config)
    folds = _batchnorm_folds(graph)
    fused, act_folds = _groupnorm_fusions(graph)
    renames = {**folds, **act_folds}
    low: set[str] = set()
    conv_targets = set(folds.values())
    # float32 only: in bfloat16 (AMX) the phases measured slower than the transposed convolution they replace.
    phased = (_phased_deconvs(model, graph) if keras.backend.backend() == "tensorflow" and precision == "float32"
              else frozenset())
    new_layers = [_rewrite_layer(cfg, fused, conv_targets, renames, low, precision, phased) for cfg in graph.layers
                  if cfg["config"]["name"] not in renames]
    new_config = {**config, "layers": new_layers, "output_layers": _rewire(config["output_layers"], renames),
                  "name": f"{config.get('name', 'generator')}_inference"}
    custom = {"FusedGroupNormAct": FusedGroupNormAct, "PhaseConv2DTranspose": PhaseConv2DTranspose}
    copy = keras.Model.from_config(new_config, custom_objects=custom)
    bn_of = {conv: bn for bn, conv in folds.items()}
    for layer in copy.layers:
        src = model.get_layer(layer.name)
        weights = src.get_weights()
        if layer.name in bn_of:
            weights = _folded_weights(model, src, bn_of[layer.name], weights)
        if isinstance(layer, PhaseConv2DTranspose):
            weights = phase_kernels(weights)
        if weights:
            layer.set_weights(weights)
    return copy
