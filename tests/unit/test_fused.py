"""FusedGroupNormAct (GroupNorm + ReLU/LeakyReLU in one XLA function, generation only) computes what the Keras layers
it replaces compute, and inference_copy uses it wherever a GroupNorm feeds a plain activation."""

import numpy as np
import pytest


@pytest.mark.parametrize("activation,slope", [("linear", 0.0), ("relu", 0.0), ("leaky_relu", 0.2)])
def test_fused_group_norm_act_matches_keras_group_norm_then_activation(activation, slope):
    import keras

    from videogen.fused import FusedGroupNormAct

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 8, 8, 32)) * 3 + 1).astype(np.float32)
    ref_gn = keras.layers.GroupNormalization(8, epsilon=1e-5)
    ref_gn.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 32).astype(np.float32), rng.normal(0, 0.3, 32).astype(np.float32)
    ref_gn.set_weights([gamma, beta])
    ref = np.asarray(ref_gn(x))
    if activation == "relu":
        ref = np.maximum(ref, 0)
    elif activation == "leaky_relu":
        ref = np.where(ref > 0, ref, slope * ref)
    fused = FusedGroupNormAct(activation=activation, negative_slope=slope, groups=8, epsilon=1e-5)
    fused.build(x.shape)
    fused.set_weights([gamma, beta])
    np.testing.assert_allclose(np.asarray(fused(x)), ref, atol=2e-5)


def test_inference_copy_fuses_every_group_norm_and_keeps_the_output():
    import keras

    from videogen.fused import FusedGroupNormAct
    from videogen.generate import inference_copy
    from videogen.model import build_generator

    keras.utils.set_random_seed(0)
    model = build_generator(64, ngf=8, context_frames=2, norm="group", dropout=0.5)
    delta = model.get_layer("delta")
    delta.set_weights([w + np.random.default_rng(1).normal(0, 0.01, w.shape).astype(np.float32)
                       for w in delta.get_weights()])
    copy = inference_copy(model)
    gn_count = sum(isinstance(layer, keras.layers.GroupNormalization) for layer in model.layers)
    fused = [layer for layer in copy.layers if isinstance(layer, FusedGroupNormAct)]
    assert len(fused) == gn_count > 0
    # Encoder GroupNorms absorb their LeakyReLU; decoder ones without dropout absorb their ReLU.
    assert {layer.activation for layer in fused} == {"leaky_relu", "relu", "linear"}
    assert len(copy.layers) < len(model.layers)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(x, training=False)), np.asarray(model(x, training=False)), atol=2e-5)


@pytest.mark.parametrize(("size", "bias", "activation"), [(1, False, None), (4, True, "tanh"), (8, False, None)])
def test_phase_transposed_convolution_computes_what_conv2d_transpose_computes(size, bias, activation):
    """Four 2x2 phase convolutions + depth_to_space give Conv2DTranspose(4, strides 2, "same")'s output, with the
    weights mapped by phase_kernels (bias and activation included), down to a 1x1 input."""
    import keras

    from videogen.fused import PhaseConv2DTranspose, phase_kernels

    rng = np.random.default_rng(size)
    reference = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", use_bias=bias, activation=activation)
    x = rng.standard_normal((2, size, size, 6)).astype(np.float32)
    reference.build(x.shape)
    reference.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in reference.get_weights()])
    phased = PhaseConv2DTranspose.from_config(reference.get_config())
    phased.build(x.shape)
    phased.set_weights(phase_kernels(reference.get_weights()))
    np.testing.assert_allclose(np.asarray(phased(x)), np.asarray(reference(x)), atol=1e-4)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_float32_inference_copy_runs_the_inner_transposed_convolutions_as_phases_and_keeps_the_output(norm):
    """float32: transposed convolutions on inputs up to 8x8 become phase convolutions (also with a BatchNorm folded
    into them), larger ones stay; the copy's output is the model's. bfloat16 keeps them all (slower there)."""
    import keras

    from videogen.fused import PhaseConv2DTranspose
    from videogen.generate import inference_copy
    from videogen.generator_io import PHASE_MAX_INPUT
    from videogen.model import build_generator

    keras.utils.set_random_seed(0)
    model = build_generator(64, ngf=8, context_frames=2, norm=norm, dropout=0.5)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.BatchNormalization)):
            layer.set_weights([w + np.random.default_rng(1).normal(0, 0.05, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    copy = inference_copy(model, "float32")
    deconvs = {layer.name: layer.input.shape[1] for layer in model.layers
               if isinstance(layer, keras.layers.Conv2DTranspose)}
    phased = {layer.name for layer in copy.layers if isinstance(layer, PhaseConv2DTranspose)}
    assert phased == {name for name, size in deconvs.items() if size <= PHASE_MAX_INPUT} and len(phased) == 4
    x = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(x, training=False)), np.asarray(model(x, training=False)), atol=1e-4)
    assert not any(isinstance(layer, PhaseConv2DTranspose) for layer in inference_copy(model, "bfloat16").layers)
