"""FusedAdam (TensorFlow's one-pass ResourceApplyAdam) makes the same updates as keras.optimizers.Adam and shares its
checkpoint format, so the faster optimizer changes nothing but speed."""

import numpy as np
import pytest


def _run(optimizer_cls, steps=4):
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    weights = [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in [(3, 4), (7,), (2, 2, 3, 5)]]
    optimizer = optimizer_cls(2e-3, beta_1=0.5)
    optimizer.build(weights)

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, weights))

    for i in range(steps):
        step([tf.constant(rng.normal(size=w.shape).astype(np.float32) * (i + 1)) for w in weights])
    return optimizer, weights


def test_fused_adam_matches_keras_adam_step_for_step():
    import keras

    from videogen.optim import FusedAdam

    ref_opt, ref = _run(keras.optimizers.Adam)
    opt, got = _run(FusedAdam)
    assert int(opt.iterations.numpy()) == int(ref_opt.iterations.numpy()) == 4
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(opt.variables, ref_opt.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)  # FMA rounding


def test_fused_adam_takes_the_fused_path(monkeypatch):
    """Guards the speed-up itself: the update must go through ResourceApplyAdam, not fall back to Keras' ops."""
    import tensorflow as tf

    from videogen.optim import FusedAdam

    calls = []
    original = tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", lambda **kw: calls.append(1) or original(**kw))
    _run(FusedAdam, steps=1)
    assert len(calls) == 3


def test_fused_adam_checkpoint_restores_into_keras_adam(tmp_path):
    import keras
    import tensorflow as tf

    from videogen.optim import FusedAdam

    opt, weights = _run(FusedAdam)
    tf.train.Checkpoint(optimizer=opt).write(str(tmp_path / "ckpt"))
    other = keras.optimizers.Adam(2e-3, beta_1=0.5)
    other.build([keras.Variable(np.zeros(w.shape, np.float32)) for w in weights])
    tf.train.Checkpoint(optimizer=other).read(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    assert int(other.iterations.numpy()) == 4
    for a, b in zip(other.variables, opt.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("amsgrad", [True])
def test_fused_adam_falls_back_where_the_kernel_does_not_apply(amsgrad):
    import keras

    from videogen.optim import FusedAdam

    ref_opt, ref = _run(lambda *a, **k: keras.optimizers.Adam(*a, amsgrad=amsgrad, **k))
    opt, got = _run(lambda *a, **k: FusedAdam(*a, amsgrad=amsgrad, **k))
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
