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
