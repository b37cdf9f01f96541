"""The training generator's innermost convolutions and transposed convolutions computed as one matrix product
(PatchMatmulConv2D, PatchMatmulConv2DTranspose) give the built-in layers' outputs and gradients and hold the same
weights."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from videogen.model import (  # noqa: E402
    PATCH_MATMUL_MAX_WIDTH,
    PATCH_MATMUL_TRANSPOSE_MAX_WIDTH,
    build_generator,
    patch_matmul_conv2d,
    patch_matmul_conv2d_transpose,
)


@pytest.mark.parametrize("transpose,width", [(False, 2), (False, 4), (False, 8), (True, 1), (True, 2), (True, 4),
                                             (True, 3)])
def test_patch_matmul_layers_match_the_built_in_layer_and_its_gradients(transpose, width):
    rng = np.random.default_rng(width)
    x = tf.constant(rng.normal(size=(3, width, 2 * width, 16)).astype(np.float32))
    built_in = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    patch_class = patch_matmul_conv2d_transpose() if transpose else patch_matmul_conv2d()
    conv = built_in(8, 4, strides=2, padding="same", use_bias=True, activation="relu")
    patch = patch_class(8, 4, strides=2, padding="same", use_bias=True, activation="relu")
    conv.build(x.shape)
    patch.build(x.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in conv.get_weights()]
    conv.set_weights(weights)
    patch.set_weights(weights)
    results = []
    for layer in (conv, patch):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    assert results[1][0].shape == results[0][0].shape
    for expected, actual in zip(*results):
        expected = expected.numpy()  # the same sums in another order: float32 rounding apart
        np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_generator_with_patch_matmul_swaps_only_the_small_encoder_convolutions_and_loads_plain_weights(tmp_path):
    plain = build_generator(64, ngf=4, context_frames=2)
    fast = build_generator(64, ngf=4, context_frames=2, patch_matmul=True)
    classes = (patch_matmul_conv2d(), patch_matmul_conv2d_transpose())
    swapped = [layer.name for layer in fast.layers if isinstance(layer, classes)]
    small = [layer.name for layer in plain.layers
             if (layer.name.endswith("_conv") and layer.name.startswith("enc")
                 and layer.input.shape[1] <= PATCH_MATMUL_MAX_WIDTH)
             or (layer.name.endswith("_deconv") and layer.input.shape[1] <= PATCH_MATMUL_TRANSPOSE_MAX_WIDTH)]
    assert swapped == small == ["enc4_conv", "enc5_conv", "enc6_conv", "dec1_deconv", "dec2_deconv", "dec3_deconv"]
    # A checkpoint of the plain generator restores into the training one (same variables), and back.
    path = tf.train.Checkpoint(generator=plain).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(generator=fast).read(path).assert_consumed()
    for a, b in zip(plain.get_weights(), fast.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 6)).astype(np.float32))
    np.testing.assert_allclose(fast(x, training=False).numpy(), plain(x, training=False).numpy(), atol=1e-5)
