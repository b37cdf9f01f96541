"""The training generator's innermost encoder convolutions computed as one matrix product (PatchMatmulConv2D) give the
convolution's outputs and gradients, hold the same weights, and never reach a saved generator."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from videogen.model import PATCH_MATMUL_MAX_WIDTH, build_generator, patch_matmul_conv2d  # noqa: E402


@pytest.mark.parametrize("width", [2, 4, 8])
def test_patch_matmul_conv_matches_the_convolution_and_its_gradients(width):
    rng = np.random.default_rng(width)
    x = tf.constant(rng.normal(size=(3, width, width, 16)).astype(np.float32))
    conv = keras.layers.Conv2D(8, 4, strides=2, padding="same", use_bias=True)
    patch = patch_matmul_conv2d()(8, 4, strides=2, padding="same", use_bias=True)
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
    assert results[1][0].shape == (3, width // 2, width // 2, 8)
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_generator_with_patch_matmul_swaps_only_the_small_encoder_convolutions_and_loads_plain_weights(tmp_path):
    plain = build_generator(64, ngf=4, context_frames=2)
    fast = build_generator(64, ngf=4, context_frames=2, patch_matmul=True)
    swapped = [layer.name for layer in fast.layers if isinstance(layer, patch_matmul_conv2d())]
    small = [layer.name for layer in plain.layers if layer.name.startswith("enc") and layer.name.endswith("_conv")
             and layer.input.shape[1] <= PATCH_MATMUL_MAX_WIDTH]
    assert swapped == small == ["enc4_conv", "enc5_conv", "enc6_conv"]
    # A checkpoint of the plain generator restores into the training one (same variables), and back.
    path = tf.train.Checkpoint(generator=plain).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(generator=fast).read(path).assert_consumed()
    for a, b in zip(plain.get_weights(), fast.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 6)).astype(np.float32))
    np.testing.assert_allclose(fast(x, training=False).numpy(), plain(x, training=False).numpy(), atol=1e-5)
