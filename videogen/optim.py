"""Adam with TensorFlow's fused update kernel.

Keras 3's ``Adam.update_step`` is written in backend-neutral ops: about ten element-wise TensorFlow ops per variable,
each a full pass over memory: for the 256 px pix2pix pair (57 M parameters) a large share of a batch-1 CPU step.
``ResourceApplyAdam`` does the same update in one multi-threaded pass (bench/run.py times the train step). The
arithmetic is the same as Keras': ``m += (g - m)(1 - b1)``,
``v += (g^2 - v)(1 - b2)``, ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; the slot variables,
``iterations`` and checkpoints are the Keras optimizer's own, so checkpoints move freely between the two.

The fused kernel is used only where it applies exactly: the TensorFlow backend, no distribution strategy (under
``MirroredStrategy`` the per-replica update goes through Keras' own path) and no amsgrad; weight decay, the moving
average of the weights (``use_ema``) and gradient clipping Keras applies around ``update_step`` anyway; anything else
falls back to ``Adam.update_step``.
"""

from __future__ import annotations

import keras


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose per-variable update is TensorFlow's fused ``ResourceApplyAdam``."""

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        handle = _resource_handle(variable)
        if (self.amsgrad or handle is None or tf.distribute.has_strategy()
                or isinstance(gradient, tf.IndexedSlices)):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m_handle = _resource_handle(self._momentums[index])
        v_handle = _resource_handle(self._velocities[index])
        if m_handle is None or v_handle is None:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=handle, m=m_handle, v=v_handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)

    def _update_model_variables_moving_average(self, trainable_variables):
        """Keras' moving average of the weights (``use_ema``) with the warm-up of TensorFlow's
        ``tf.train.ExponentialMovingAverage(num_updates=step)``: the decay is ``min(ema_momentum, (1 + step) /
        (10 + step))``, so a short run's average is not held near its first, untrained weights. The first update
        copies the weights, as Keras' does."""
        import tensorflow as tf

        if not self.use_ema:
            return
        step = tf.cast(self.iterations, tf.float32)
        decay = tf.minimum(tf.cast(self.ema_momentum, tf.float32), (1.0 + step) / (10.0 + step))
        decay = tf.where(step > 0, decay, 0.0)
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                d = tf.cast(decay, var.dtype)
                average.assign(d * average + (1 - d) * var)


def _resource_handle(variable):
    """The resource handle of a Keras (TensorFlow backend) variable, or None when it has none (other backends,
    distributed or mirrored values)."""
    import tensorflow as tf

    value = variable if isinstance(variable, tf.Variable) else getattr(variable, "value", None)
    if isinstance(value, tf.Variable) and not isinstance(value, tf.distribute.DistributedValues):
        handle = getattr(value, "handle", None)
        if isinstance(handle, tf.Tensor) and handle.dtype == tf.resource:
            return handle
    return None
