"""pix2pix networks and losses (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

Reads and writes nothing: factories for the U-Net generator and the 70x70 PatchGAN discriminator, and the losses.
Only built-in Keras layers are used, so a saved ``generator.keras`` loads with
``keras.models.load_model(path, compile=False)`` without importing this package (the training-only variant
``build_generator(patch_matmul=True)`` is never saved: the train stage exports a plain copy).

Conventions: images are float32 in [-1, 1], channels last. With ``context_frames`` K the generator input stacks the
last K frames on channels, oldest first: ``(B, S, S, 3K)``; the output is the next frame ``(B, S, S, 3)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SUPPORTED_IMAGE_SIZES = (64, 128, 256, 512)

# The paper's dropout (p=0.5) sits in the first three decoder blocks; it is the generator's only noise.
_DROPOUT_RATE = 0.5
_DROPOUT_BLOCKS = 3
# The residual path (last frame + change, clip) stays float32 under a mixed-precision policy: the frame itself must not
# be rounded to bfloat16's 8-bit mantissa, which costs over 1 dB of one-step PSNR (docs/quality.md).
_F32 = "float32"

NORMS = ("batch", "group")
# Keras' default 0.99 leaves the moving statistics behind the weights in short runs; 0.9 gives better rollouts
# (docs/quality.md). Only for norm="batch" (and the discriminator, which always runs in training mode).
_BN_MOMENTUM = 0.9
_GROUP_MIN_CHANNELS = 4  # channels per group of GroupNormalization (fewer at most where a layer has fewer channels)
_GROUP_MAX = 32  # groups at most (Wu & He's default)


def _keras():
    import keras  # imported lazily: importing videogen.model must not start TensorFlow

    return keras


def unet_depth(image_size: int) -> int:
    """Number of stride-2 encoder blocks: the U-Net goes all the way down to 1x1 (8 for 256 px, as in the paper)."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size}")
    return int(math.log2(image_size))


def group_count(channels: int) -> int:
    """Groups for GroupNormalization of ``channels``: the most groups (at most 32) that divide ``channels`` and keep
    at least 4 channels per group, so a group still has statistics at the U-Net's 1x1 bottleneck; 1 if none."""
    for groups in range(min(_GROUP_MAX, channels // _GROUP_MIN_CHANNELS), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def _norm(x, filters: int, name: str, norm: str):
    layers = _keras().layers
    if norm == "group":
        # Per-image statistics: the same computation in training and inference, no moving averages, and images of a
        # batch (e.g. K videos generated together) never influence each other.
        return layers.GroupNormalization(group_count(filters), epsilon=1e-5, name=f"{name}_gn")(x)
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)


def _downsample(x, filters: int, name: str, batchnorm: bool = True, norm: str = "batch", patch_matmul: bool = False):
    keras = _keras()
    layers = keras.layers
    init = keras.initializers.RandomNormal(0.0, 0.02)
    small = patch_matmul and max(x.shape[1], x.shape[2]) <= PATCH_MATMUL_MAX_WIDTH
    conv = patch_matmul_conv2d() if small else layers.Conv2D
    x = conv(filters, 4, strides=2, padding="same", kernel_initializer=init, use_bias=not batchnorm,
             name=f"{name}_conv")(x)
    if batchnorm:
        x = _norm(x, filters, name, norm)
    return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def _upsample(x, filters: int, name: str, dropout: float, norm: str = "batch", patch_matmul: bool = False):
    keras = _keras()
    layers = keras.layers
    init = keras.initializers.RandomNormal(0.0, 0.02)
    small = patch_matmul and max(x.shape[1], x.shape[2]) <= PATCH_MATMUL_TRANSPOSE_MAX_WIDTH
    deconv = patch_matmul_conv2d_transpose() if small else layers.Conv2DTranspose
    x = deconv(filters, 4, strides=2, padding="same", kernel_initializer=init, use_bias=False,
               name=f"{name}_deconv")(x)
    x = _norm(x, filters, name, norm)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_generator(image_size: int = 256, ngf: int = 64, context_frames: int = 1, residual: bool = True,
                    norm: str = "batch", dropout: float = _DROPOUT_RATE, delta_scale: float = 2.0,
                    patch_matmul: bool = False):
    """U-Net generator: encoder down to 1x1, decoder back up with skip connections.

    Args:
        image_size: S, one of 64, 128, 256, 512. The depth is log2(S) blocks (8 at 256 px, as in the paper).
        ngf: filters of the first encoder block; block i has ``min(ngf * 2**i, ngf * 8)``.
        context_frames: K, how many past frames are stacked on the input channels.
        residual: if True the network predicts the change from the last input frame (``out = clip(last + delta)``)
            and the last layer starts at zero, so an untrained model copies the last frame (the copy baseline)
            instead of starting from noise. If False, the paper's plain ``tanh`` output.
        norm: "batch" (the paper's BatchNormalization: batch statistics in training, moving averages in inference)
            or "group" (GroupNormalization, per-image statistics: identical in training and inference).
        dropout: rate of the Dropout layers in the three innermost decoder blocks (the paper's 0.5); 0 = none.
        delta_scale: residual only: the change is ``delta_scale * tanh(...)``, so at most this much per step.
        patch_matmul: the encoder convolutions on inputs at most ``PATCH_MATMUL_MAX_WIDTH`` wide and the decoder's
            transposed convolutions on inputs at most ``PATCH_MATMUL_TRANSPOSE_MAX_WIDTH`` wide are
            :func:`patch_matmul_conv2d` and :func:`patch_matmul_conv2d_transpose` layers (the same weights and sums,
            faster to train on CPUs). Such a model is for training only: it holds layers that are not built in, so
            save a plain copy (``set_weights``).

    Returns:
        A ``keras.Model`` mapping ``(B, S, S, 3K)`` float32 in [-1, 1] to ``(B, S, S, 3)`` in [-1, 1].
    """
    keras = _keras()
    layers = keras.layers
    depth = unet_depth(image_size)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input((image_size, image_size, 3 * context_frames), name="frames")

    # Encoder, 256 px, ngf 64: (128,128,64) (64,64,128) (32,32,256) (16,16,512) (8,8,512) (4,4,512) (2,2,512) (1,1,512)
    skips = []
    x = inputs
    for i in range(depth):
        x = _downsample(x, min(ngf * 2**i, ngf * 8), name=f"enc{i + 1}", batchnorm=i > 0, norm=norm,
                        patch_matmul=patch_matmul)
        skips.append(x)

    # Decoder, 256 px: (2,2,1024) (4,4,1024) (8,8,1024) (16,16,1024) (32,32,512) (64,64,256) (128,128,128)
    # (the channel count doubles where the skip is concatenated); dropout in the three innermost blocks.
    for j, skip in enumerate(reversed(skips[:-1])):
        level = depth - 2 - j  # index of the encoder block whose output we are about to join
        x = _upsample(x, min(ngf * 2**level, ngf * 8), name=f"dec{j + 1}",
                      dropout=dropout if j < _DROPOUT_BLOCKS else 0.0, norm=norm, patch_matmul=patch_matmul)
        x = layers.Concatenate(name=f"dec{j + 1}_skip")([x, skip])

    # Output, 256 px: (256,256,3)
    init = keras.initializers.RandomNormal(0.0, 0.02)
    if not residual:
        outputs = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",
                                         kernel_initializer=init, name="output")(x)
        return keras.Model(inputs, outputs, name="generator")

    return _residual_model(keras, inputs, x, context_frames, delta_scale)


def _residual_model(keras, inputs, x, context_frames: int, delta_scale: float):
    """The residual head: ``clip(last frame + delta_scale * tanh(...), -1, 1)``, from built-in layers only."""
    layers = keras.layers
    delta = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", kernel_initializer="zeros",
                                   name="delta")(x)
    delta = layers.Rescaling(delta_scale, name="delta_scale", dtype=_F32)(delta)  # 2.0: a change can span the whole [-1, 1]
    last = inputs
    if context_frames > 1:
        # Select the newest frame's channels with a fixed 1x1 convolution (a built-in layer, unlike a Lambda slice).
        last = layers.Conv2D(3, 1, use_bias=False, trainable=False, name="last_frame", dtype=_F32)(inputs)
    x = layers.Add(name="residual_add", dtype=_F32)([last, delta])
    # clip(x, -1, 1) from built-in layers: relu6-style cap on (x + 1), then shift back.
    x = layers.Rescaling(1.0, offset=1.0, name="clip_shift", dtype=_F32)(x)
    x = layers.ReLU(max_value=2.0, name="clip", dtype=_F32)(x)
    outputs = layers.Rescaling(1.0, offset=-1.0, name="output", dtype=_F32)(x)
    model = keras.Model(inputs, outputs, name="generator")
    if context_frames > 1:
        selector = np.zeros((1, 1, 3 * context_frames, 3), dtype=np.float32)
        for c in range(3):
            selector[0, 0, 3 * (context_frames - 1) + c, c] = 1.0
        model.get_layer("last_frame").set_weights([selector])
    return model


def build_discriminator(image_size: int = 256, ndf: int = 64, context_frames: int = 1):
    """70x70 PatchGAN conditioned on the input frames: real/fake logits for overlapping patches.

    Args:
        image_size: S.
        ndf: filters of the first block (64 in the paper).
        context_frames: K, channels of the condition are 3K.

    Returns:
        A ``keras.Model`` taking ``[condition (B,S,S,3K), frame (B,S,S,3)]`` and returning logits
        ``(B, S/8 - 2, S/8 - 2, 1)`` (30x30 at 256 px).
    """
    keras = _keras()
    layers = keras.layers
    init = keras.initializers.RandomNormal(0.0, 0.02)
    condition = keras.Input((image_size, image_size, 3 * context_frames), name="condition")
    frame = keras.Input((image_size, image_size, 3), name="frame")
    x = layers.Concatenate(name="pair")([condition, frame])  # (256,256,3K+3)
    x = _downsample(x, ndf, name="d1", batchnorm=False)  # (128,128,64)
    x = _downsample(x, ndf * 2, name="d2")  # (64,64,128)
    x = _downsample(x, ndf * 4, name="d3")  # (32,32,256)
    x = layers.ZeroPadding2D(name="d4_pad")(x)  # (34,34,256)
    x = layers.Conv2D(ndf * 8, 4, strides=1, kernel_initializer=init, use_bias=False, name="d4_conv")(x)  # (31,31,512)
    x = layers.BatchNormalization(name="d4_bn")(x)
    x = layers.LeakyReLU(0.2, name="d4_lrelu")(x)
    x = layers.ZeroPadding2D(name="out_pad")(x)  # (33,33,512)
    logits = layers.Conv2D(1, 4, strides=1, kernel_initializer=init, name="logits")(x)  # (30,30,1)
    return keras.Model([condition, frame], logits, name="discriminator")


def generator_loss(disc_fake_logits, generated, target, gan_weight: float, l1_weight: float):
    """pix2pix generator objective. Returns ``(total, gan, l1)`` so each part can be logged."""
    import tensorflow as tf

    gan = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(disc_fake_logits), logits=disc_fake_logits))
    l1 = tf.reduce_mean(tf.abs(target - generated))
    total = gan_weight * gan + l1_weight * l1
    return total, gan, l1


def discriminator_loss(disc_real_logits, disc_fake_logits):
    """PatchGAN objective, halved as in the paper ("we divide the objective by 2 while optimizing D")."""
    import tensorflow as tf

    real = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(disc_real_logits), logits=disc_real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(disc_fake_logits), logits=disc_fake_logits)
    return 0.5 * (tf.reduce_mean(real) + tf.reduce_mean(fake))


# ------------------------------------------------------------------------------------------- training-only layers
# Encoder inputs up to this wide (the last three encoder blocks) train faster as one matrix product than as oneDNN
# convolutions: 1.6x (8 wide), 2.5x (4) and 2.2x (2) for forward plus both gradients at batch 8, 512 channels, float32;
# 1.35x, 2.1x and 2.1x in bfloat16; at 16 wide the convolution is as fast (2-core Xeon, AVX512_BF16, no AMX).
PATCH_MATMUL_MAX_WIDTH = 8


@functools.cache
def patch_matmul_conv2d():
    """The Keras layer class ``PatchMatmulConv2D`` (defined on first use, so that importing this module stays light).

    A ``Conv2D(kernel_size=4, strides=2, padding="same")`` that computes its output as one matrix product: the 4x4
    patches of the input (padded by 1 on each side, stride 2) times the kernel read as a ``(16 C_in, C_out)`` matrix,
    which is the HWIO kernel's own memory. The same sums of products as the convolution, in another order; the same
    weights, so checkpoints move freely between the two.

    Why: in training, TensorFlow's oneDNN convolution reorders its weights into a blocked layout for the forward and the
    backward-data pass and reorders the weight gradient back, on every call (it keeps reordered weights only for
    constant filters, i.e. inference). At the U-Net's innermost blocks (inputs 8x8 down to 2x2, 512 channels: 4 M
    weights, little arithmetic) those reorders and the convolutions' poor use of so few pixels were most of the
    layers' time. Other configurations compute as ``Conv2D``."""
    import keras

    class PatchMatmulConv2D(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            import tensorflow as tf

            height, width = inputs.shape[1], inputs.shape[2]
            if (tuple(self.kernel_size) != (4, 4) or tuple(self.strides) != (2, 2) or self.padding != "same"
                    or tuple(self.dilation_rate) != (1, 1) or self.data_format != "channels_last"
                    or height is None or width is None or height % 2 or width % 2):
                return super().convolution_op(inputs, kernel)
            kernel = tf.cast(tf.convert_to_tensor(kernel), inputs.dtype)
            padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])  # what "same" pads here: 1 before, 1 after
            patches = tf.image.extract_patches(padded, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
            product = tf.matmul(tf.reshape(patches, [-1, patches.shape[-1]]), tf.reshape(kernel, [-1, self.filters]))
            return tf.reshape(product, [-1, height // 2, width // 2, self.filters])

    return PatchMatmulConv2D


# Decoder inputs up to this wide (the three innermost decoder blocks), likewise: 2.2x (1 wide), 2.3x (2) and 1.4x (4)
# in float32; 2.1x, 1.9x and 1.1x in bfloat16; slower at 8 wide (same machine and batch). The whole train step at
# 128 px, batch 8: 1.05x in bfloat16, 1.16x in float32 with oneDNN capped to AVX2 (interleaved with the built-in layers).
PATCH_MATMUL_TRANSPOSE_MAX_WIDTH = 4
# The taps of a 4-wide kernel (stride 2, "same": output row 2i + kh - 1 from input row i) that reach output row
# 2m + r, each with the input row it reads, as an offset d from m: row m + d.
_TRANSPOSE_TAPS = {0: ((1, 0), (3, -1)), 1: ((2, 0), (0, 1))}


def _shifted(t, axis: int, offset: int):
    """``out[m] = t[m + offset]`` along ``axis`` (offset -1, 0 or 1), zero where that falls outside."""
    import tensorflow as tf

    if offset == 0:
        return t
    paddings = [[0, 0]] * 4
    paddings[axis] = [0, 1] if offset > 0 else [1, 0]
    begin, size = [0] * 4, [-1] * 4
    begin[axis], size[axis] = (1 if offset > 0 else 0), t.shape[axis]
    return tf.slice(tf.pad(t, paddings), begin, size)


def _transpose_patches_into_place(patches):
    """``(B, H, W, 4, 4, C)`` output patches of each input pixel -> the ``(B, 2H, 2W, C)`` sum of the transposed
    convolution (col2im), one output phase (row and column parity) at a time."""
    import tensorflow as tf

    _, height, width, _, _, channels = patches.shape
    rows = []
    for r in (0, 1):
        phases = []
        for c in (0, 1):
            phases.append(tf.add_n([_shifted(_shifted(patches[:, :, :, kh, kw, :], 1, di), 2, dj)
                                    for kh, di in _TRANSPOSE_TAPS[r] for kw, dj in _TRANSPOSE_TAPS[c]]))
        rows.append(tf.stack(phases, axis=3))  # (B, H, W, 2 column phases, C)
    return tf.reshape(tf.stack(rows, axis=2), [-1, 2 * height, 2 * width, channels])  # (B, H, 2, W, 2, C)


@functools.cache
def patch_matmul_conv2d_transpose():
    """The Keras layer class ``PatchMatmulConv2DTranspose`` (defined on first use).

    A ``Conv2DTranspose(kernel_size=4, strides=2, padding="same")`` computed as one matrix product, each input pixel
    times the kernel read as a ``(16 C_out, C_in)`` matrix (the kernel's own memory, transposed in the product), which
    gives each pixel's 4x4 output patch; the overlapping patches are then summed into place. The same sums of products
    as the transposed convolution, in another order, with the same weights; why: as :func:`patch_matmul_conv2d`.
    Other configurations compute as ``Conv2DTranspose``."""
    import keras

    class PatchMatmulConv2DTranspose(keras.layers.Conv2DTranspose):
        def call(self, inputs):
            import tensorflow as tf

            height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
            if (tuple(self.kernel_size) != (4, 4) or tuple(self.strides) != (2, 2) or self.padding != "same"
                    or tuple(self.dilation_rate) != (1, 1) or self.output_padding is not None
                    or self.data_format != "channels_last" or height is None or width is None):
                return super().call(inputs)
            kernel = tf.cast(tf.convert_to_tensor(self.kernel), inputs.dtype)  # (4, 4, C_out, C_in)
            patches = tf.matmul(tf.reshape(inputs, [-1, channels]), tf.reshape(kernel, [-1, channels]),
                                transpose_b=True)
            outputs = _transpose_patches_into_place(tf.reshape(patches, [-1, height, width, 4, 4, self.filters]))
            if self.use_bias:
                outputs = outputs + tf.cast(tf.convert_to_tensor(self.bias), outputs.dtype)
            return self.activation(outputs) if self.activation is not None else outputs

    return PatchMatmulConv2DTranspose


# ------------------------------------------------------------------------------------------------- null generator
@functools.cache
def _noise_layer():
    """The Keras layer class ``LastFramePlusNoise`` (defined on first use, so that importing this module stays light;
    registered as ``videogen>LastFramePlusNoise`` so that a saved ``generator.keras`` holding it loads)."""
    import keras

    @keras.saving.register_keras_serializable(package="videogen")
    class LastFramePlusNoise(keras.layers.Layer):
        """``(B, S, S, 3K)`` in [-1, 1] -> the last frame plus Gaussian noise of ``sigma``, clipped to [-1, 1]."""

        def __init__(self, sigma: float, seed: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.sigma, self.seed = float(sigma), int(seed)
            self.seed_generator = keras.random.SeedGenerator(self.seed)

        def call(self, inputs, training=False):
            last = inputs[..., -3:]
            noise = keras.random.normal(keras.ops.shape(last), stddev=self.sigma, seed=self.seed_generator)
            return keras.ops.clip(last + keras.ops.cast(noise, last.dtype), -1.0, 1.0)

        def get_config(self):
            return {**super().get_config(), "sigma": self.sigma, "seed": self.seed}

    return LastFramePlusNoise


def custom_objects() -> dict[str, type]:
    """What ``keras.models.load_model`` needs to load a generator file that holds a null control."""
    return {"LastFramePlusNoise": _noise_layer()}


def last_frame_plus_noise(image_size: int, context_frames: int, sigma: float, seed: int = 0):
    """A Keras model with the ``generator.keras`` contract (``(B, S, S, 3K)`` -> ``(B, S, S, 3)``, values in [-1, 1])
    that returns the last context frame plus Gaussian noise of ``sigma`` (in [-1, 1] units: 0.05 is 6.4 levels of
    255)."""
    import keras

    inputs = keras.Input((image_size, image_size, 3 * context_frames))
    return keras.Model(inputs, _noise_layer()(sigma, seed)(inputs), name="last_frame_plus_noise")
