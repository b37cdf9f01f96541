"""Inference-only fused layers for generation (TensorFlow backend).

GroupNormalization cannot be folded into the convolution before it like BatchNorm (its statistics are per image), and
Keras computes it as a chain of separate element-wise TensorFlow ops, each a full pass over memory, followed by one
more pass for the ReLU/LeakyReLU after it. ``FusedGroupNormAct`` computes the same GroupNorm (float32 statistics) and
the activation in one XLA-compiled function, so XLA fuses them into a reduction plus a single element-wise loop, while
the convolutions around it stay on oneDNN (XLA for the whole network is slower on CPUs). bench/layers.py times both.
Used only by :func:`videogen.generator_io.inference_copy` (in memory, never saved): saved models keep built-in layers.
"""

from __future__ import annotations

import functools

import keras

ACTIVATIONS = ("linear", "relu", "leaky_relu")


@functools.cache
def _group_norm_act(groups: int, epsilon: float, activation: str, negative_slope: float):
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=False)
    def fn(x, gamma, beta):
        channels = x.shape[-1]
        shape = tf.shape(x)
        grouped = tf.cast(tf.reshape(x, [shape[0], -1, groups, channels // groups]), tf.float32)
        mean, variance = tf.nn.moments(grouped, axes=[1, 3], keepdims=True)
        scale = tf.math.rsqrt(variance + epsilon) * tf.reshape(tf.cast(gamma, tf.float32), [1, 1, groups, -1])
        offset = tf.reshape(tf.cast(beta, tf.float32), [1, 1, groups, -1]) - mean * scale
        y = grouped * scale + offset
        if activation == "relu":
            y = tf.nn.relu(y)
        elif activation == "leaky_relu":
            y = tf.nn.leaky_relu(y, alpha=negative_slope)
        return tf.cast(tf.reshape(y, shape), x.dtype)

    return fn


class FusedGroupNormAct(keras.layers.GroupNormalization):
    """``GroupNormalization`` followed by ``activation`` ("linear", "relu" or "leaky_relu" with ``negative_slope``),
    as one XLA-compiled function. Same weights (gamma, beta) as the GroupNormalization it replaces."""

    def __init__(self, activation: str = "linear", negative_slope: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if self.axis not in (-1, 3):
            raise ValueError("FusedGroupNormAct normalizes the channel-last axis only")
        self.activation = activation
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.convert_to_tensor(self.gamma.value) if self.scale else tf.ones([channels])
        beta = tf.convert_to_tensor(self.beta.value) if self.center else tf.zeros([channels])
        fn = _group_norm_act(int(self.groups), float(self.epsilon), self.activation, self.negative_slope)
        return fn(inputs, gamma, beta)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "negative_slope": self.negative_slope}


def fusable_activation(layer_config: dict) -> tuple[str, float] | None:
    """``(activation, negative_slope)`` if a functional layer config is a plain ReLU or LeakyReLU that
    ``FusedGroupNormAct`` computes exactly, else None."""
    cls, cfg = layer_config["class_name"], layer_config["config"]
    if cls == "LeakyReLU":
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        return "leaky_relu", float(slope)
    if cls == "ReLU" and cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold"):
        return "relu", 0.0
    return None


# Taps of a 4-wide transposed-convolution kernel (stride 2, "same": TensorFlow pads the matching forward convolution
# by 1 before, 1 after) that reach output row 2m + r, in the order of input rows m - 1 + r and m + r:
# y[2m] = x[m-1] w[3] + x[m] w[1] and y[2m+1] = x[m] w[2] + x[m+1] w[0].
_PHASE_TAPS = ((3, 1), (2, 0))


class PhaseConv2DTranspose(keras.layers.Conv2DTranspose):
    """``Conv2DTranspose(kernel_size=4, strides=2, padding="same")`` computed as four 2x2 forward convolutions, one
    per output phase (even/odd row x even/odd column), interleaved with ``depth_to_space``: the same sums of products
    (the same FLOPs), in another order.

    Why: TensorFlow's oneDNN kernels keep the reordered weights of a forward convolution from call to call, but
    reorder a transposed convolution's weights on every call; at the U-Net's inner blocks (small images, large
    weights) that reorder was most of the layer's time (bench/layers.py). Built from a ``Conv2DTranspose`` config;
    its weights come from :func:`phase_kernels`. Inference copy only (never saved)."""

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.phases = [self.add_weight(name=f"phase_{r}{c}", shape=(2, 2, channels, self.filters), initializer="zeros")
                       for r in (0, 1) for c in (0, 1)]
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.built = True

    def call(self, inputs):
        import tensorflow as tf

        height, width = inputs.shape[1], inputs.shape[2]
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        parts = [tf.nn.conv2d(padded[:, r:r + height + 1, c:c + width + 1, :], self.phases[2 * r + c].value, 1, "VALID")
                 for r in (0, 1) for c in (0, 1)]
        outputs = tf.nn.depth_to_space(tf.concat(parts, axis=-1), 2)
        if self.bias is not None:
            outputs = outputs + self.bias.value
        return self.activation(outputs) if self.activation is not None else outputs


def phase_convertible(layer_config: dict) -> bool:
    """A functional layer config that :class:`PhaseConv2DTranspose` computes exactly."""
    cfg = layer_config["config"]
    return (layer_config["class_name"] == "Conv2DTranspose" and tuple(cfg.get("kernel_size", ())) == (4, 4)
            and tuple(cfg.get("strides", ())) == (2, 2) and cfg.get("padding") == "same"
            and tuple(cfg.get("dilation_rate", (1, 1))) == (1, 1) and cfg.get("output_padding") is None
            and cfg.get("data_format", "channels_last") == "channels_last")


def phase_kernels(weights: list) -> list:
    """``[kernel (4, 4, out, in), bias?]`` of a Conv2DTranspose -> the four phase kernels ``(2, 2, in, out)`` and the
    bias of :class:`PhaseConv2DTranspose`."""
    import numpy as np

    kernel = weights[0]
    phases = [np.ascontiguousarray(kernel[np.ix_(_PHASE_TAPS[r], _PHASE_TAPS[c])].transpose(0, 1, 3, 2))
              for r in (0, 1) for c in (0, 1)]
    return phases + list(weights[1:])
