"""The pix2pix train step: one body, run as is on one device or through ``strategy.run`` on each replica.

Speed choices (bench/run.py times the step): one persistent tape for both
gradient sets (the same work as the tutorial's two tapes, kept for clarity); two discriminator calls, real and fake
(one joint call changes the discriminator's batch norm statistics and was not faster); XLA off on CPUs, where it made
the step slower, on for one GPU.
"""

from __future__ import annotations

LOSS_NAMES = ("gen_total", "gen_gan", "gen_l1", "disc")


def _step_body(generator, discriminator, generator_optimizer, discriminator_optimizer, *, gan_weight: float,
               l1_weight: float, input_noise: float, global_batch_size: int | None, context_frames: int = 1,
               unroll_steps: int = 1):
    """``(inputs uint8, target uint8) -> the four losses``, updating both networks from one forward pass.

    With ``unroll_steps`` U > 1 the inputs hold the K context frames and the U - 1 real frames after them (a window of
    :func:`videogen.train.data.pair_example`): the generator predicts U frames in a row, each fed back into the
    context of the next (rounded to the 8-bit grid in the forward pass, identity gradient: what a generation feeds
    back), all under one tape, so the gradients flow through the fed-back predictions (backprop through time). Each
    step's prediction is scored against its real frame with the discriminator conditioned on the real context; each
    loss is the mean over the U steps (U = 1 is the plain pix2pix step).

    With ``global_batch_size`` (a replica's share of a distributed batch) each loss is weighted by the replica's share
    of the global batch (``tf.nn.compute_average_loss`` semantics, exact also for an uneven split): the optimizers sum
    the replicas' gradients, so the update equals one device's on the whole batch and the learning rate needs no
    scaling."""
    import tensorflow as tf

    from videogen.frames import tf_to_float
    from videogen.model import discriminator_loss, generator_loss

    k, u = context_frames, unroll_steps

    def body(inputs, target):
        if u == 1:
            windows = [(tf_to_float(inputs), tf_to_float(target))]
        else:
            frames = tf_to_float(tf.concat([inputs, target], axis=-1))  # K + U frames, oldest first
            windows = [(frames[..., 3 * j:3 * (j + k)], frames[..., 3 * (j + k):3 * (j + k + 1)]) for j in range(u)]
        with tf.GradientTape(persistent=True) as tape:
            fed = windows[0][0]  # the context the generator sees: real at first, then its own frames fed back
            sums = [0.0, 0.0, 0.0, 0.0]
            for j, (condition, real) in enumerate(windows):
                gen_input = fed
                if input_noise > 0:
                    gen_input = fed + tf.random.normal(tf.shape(fed), stddev=input_noise)
                fake = tf.cast(generator(gen_input, training=True), tf.float32)  # float32 losses under mixed precision
                real_logits = tf.cast(discriminator([condition, real], training=True), tf.float32)
                fake_logits = tf.cast(discriminator([condition, fake], training=True), tf.float32)
                gen_total, gen_gan, gen_l1 = generator_loss(fake_logits, fake, real, gan_weight, l1_weight)
                step_losses = (gen_total, gen_gan, gen_l1, discriminator_loss(real_logits, fake_logits))
                sums = [a + b for a, b in zip(sums, step_losses)]
                if j + 1 < u:
                    quantized = tf.round((fake + 1.0) * 127.5) / 127.5 - 1.0
                    fed_frame = fake + tf.stop_gradient(quantized - fake)  # straight-through rounding
                    fed = tf.concat([fed[..., 3:], fed_frame], axis=-1) if k > 1 else fed_frame
            losses = tuple(value / float(u) for value in sums) if u > 1 else tuple(sums)
            if global_batch_size is not None:
                share = tf.cast(tf.shape(inputs)[0], tf.float32) / float(global_batch_size)
                losses = tuple(value * share for value in losses)
        gen_grads = tape.gradient(losses[0], generator.trainable_variables)
        disc_grads = tape.gradient(losses[3], discriminator.trainable_variables)
        del tape
        # Under a strategy the optimizers all-reduce (SUM) the replicas' gradients here.
        generator_optimizer.apply_gradients(zip(gen_grads, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(disc_grads, discriminator.trainable_variables))
        return losses

    return body


def make_train_step(generator, discriminator, generator_optimizer, discriminator_optimizer, step, *,
                    gan_weight: float, l1_weight: float, input_noise: float, batch_size: int, image_size: int,
                    context_frames: int, jit_compile: bool = False, unroll_steps: int = 1):
    """Build the pix2pix train step as a fixed-shape ``tf.function`` over the given models and optimizers.

    The step takes uint8 batches ``(B, S, S, 3K)`` and ``(B, S, S, 3)``, updates both networks from one forward pass
    (one persistent tape, both gradient sets) and adds 1 to ``step``. Returns ``(gen_total, gen_gan, gen_l1, disc)``.
    With ``unroll_steps`` U > 1 the inputs are ``(B, S, S, 3(K+U-1))`` windows and the step predicts U fed-back frames
    (:func:`_step_body`).
    """
    import tensorflow as tf

    body = _step_body(generator, discriminator, generator_optimizer, discriminator_optimizer, gan_weight=gan_weight,
                      l1_weight=l1_weight, input_noise=input_noise, global_batch_size=None,
                      context_frames=context_frames, unroll_steps=unroll_steps)

    def train_step(inputs, target):
        losses = body(inputs, target)
        step.assign_add(1)
        return losses

    signature = [tf.TensorSpec([batch_size, image_size, image_size, 3 * (context_frames + unroll_steps - 1)], tf.uint8),
                 tf.TensorSpec([batch_size, image_size, image_size, 3], tf.uint8)]
    return tf.function(train_step, input_signature=signature, jit_compile=jit_compile, reduce_retracing=True)


def make_distributed_train_step(strategy, generator, discriminator, generator_optimizer, discriminator_optimizer, step,
                                *, gan_weight: float, l1_weight: float, input_noise: float, global_batch_size: int,
                                jit_compile: bool = False, context_frames: int = 1, unroll_steps: int = 1):
    """The train step of :func:`make_train_step` run data-parallel on each replica of ``strategy`` (MirroredStrategy).

    Models, optimizers and ``step`` must have been created under ``strategy.scope()``. The step takes the per-replica
    batches of a ``strategy.experimental_distribute_dataset`` over batches of ``global_batch_size`` and returns the
    four losses over the global batch (the SUM of the replicas' weighted shares), like :func:`make_train_step`.
    ``jit_compile`` XLA-compiles the function each replica runs (the form MirroredStrategy supports: its all-reduces
    then skip ``merge_call``, which it does for GPU devices only).
    """
    import tensorflow as tf

    body = _step_body(generator, discriminator, generator_optimizer, discriminator_optimizer, gan_weight=gan_weight,
                      l1_weight=l1_weight, input_noise=input_noise, global_batch_size=global_batch_size,
                      context_frames=context_frames, unroll_steps=unroll_steps)
    replica_fn = tf.function(body, jit_compile=True, reduce_retracing=True) if jit_compile else body

    def train_step(inputs, target):
        per_replica = strategy.run(replica_fn, args=(inputs, target))
        step.assign_add(1)  # cross-replica context: one increment
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in per_replica)

    return tf.function(train_step, reduce_retracing=True)
