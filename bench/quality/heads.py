"""Does the model alone live? Generator heads and training recipes measured without steering.

Each recipe trains a next-frame generator at ``make demo``'s budget (64 px, ngf/ndf 32, two context frames, 1200
steps, batch 8, bfloat16 where the CPU has it) on one development clip, then measures the learned network fed its
own output with nothing else in the loop: two ``--frames``-frame videos from the dataset's first validation context,
judged by ``videogen.video_quality.judge`` against the clip (every measure per 100-frame window, the failed checks),
their diversity, and the 1/5/10/20-step rollout PSNR from every held-out start against copying the last frame.
Rows go to ``--results`` (JSON lines); ``--table`` prints them.

Recipes (flags combine): plain pix2pix (``--zc 0 --noise-max 0``, the project's generator); a spatial latent
``--zc`` channels at 1/``--zdown`` resolution, learned as a conditional VAE with a GAN on prior samples (BicycleGAN,
Zhu et al. 2017, arXiv:1711.11586); noise on the context frames with its level as an input (GameNGen, Valevski et
al. 2024, arXiv:2408.14837, section 3.2.1) ``--noise-max``; the frame change as an input ``--motion-cond``; a
best-of-M head (``--wta M``: M latent samples, L1 on the closest, GAN on one; Guzman-Rivera et al. 2012, multiple
choice learning); a rectified-flow head on the scaled residual (``--fm N``: N Euler steps; Liu et al. 2022,
arXiv:2209.03003); the generator trained on its own ``--roll N``-step continuations against the critic, no L1
there (Self Forcing's rollouts, Huang et al. 2025, arXiv:2506.08009, with a GAN as the distribution-matching loss);
``--anchor W`` (with ``--roll``): a second critic, anchored to the clip, sees the real start frame with the frame 1 to
N + 1 steps later, real or the generator's own continuation (a learned anchor to the clip's look, training only);
``--warp P``: a flow head, the last frame warped (bilinearly) by a predicted flow
of at most P px plus the predicted change (Finn et al. 2016, arXiv:1605.07157, transform the previous frame;
:func:`backward_warp_layer`);
``--reverse P`` / ``--stride N``: training examples played backwards with probability P and at a frame stride
drawn from 1..N (the same appearance moving both ways and at several speeds);
``--l1roll N``: N more fed-back steps per example with the L1 and GAN terms against the real continuation, gradients
through the chain (backpropagation through time, as ``videogen train --unroll-steps N + 1``);
``--ema D``: the moving average of the generator's weights is measured; ``--library JSON``: the project's own
trainer with these TrainSettings overrides (its rollouts with dropout on, as generation runs them, or off with
``--deterministic``).

    .venv/bin/python bench/quality/heads.py --clip bikes --tag pix2pix --zc 0 --noise-max 0
    .venv/bin/python bench/quality/heads.py --clip bikes --tag wta4 --wta 4 --noise-max 0 --prior-gan 0
    .venv/bin/python bench/quality/heads.py --clip bikes --tag flow8 --fm 8 --noise-max 0
    .venv/bin/python bench/quality/heads.py --clip bikes --tag selfroll4 --zc 0 --noise-max 0.1 --roll 4 --roll-gan 0.3
    .venv/bin/python bench/quality/heads.py --clip bikes --tag selfroll4-noise0.1-gan0.3-anchor1 --zc 0 \
        --noise-max 0.1 --roll 4 --roll-gan 0.3 --anchor 1
    .venv/bin/python bench/quality/heads.py --clip bikes --tag ema --zc 0 --noise-max 0 --dropout 0.5 --ema 0.995
    .venv/bin/python bench/quality/heads.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.quality.clips import CLIPS, prepared  # noqa: E402

RESULTS = REPO / "bench" / "quality" / "heads.jsonl"
MEASURES = ("motion", "coherence", "realism", "spacetime", "coarse", "completeness", "contrast", "sharpness",
            "copying")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="bikes", choices=list(CLIPS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="recipe", help="the row's name (and its weights' file name)")
    for name, kind, default in (("steps", int, 1200), ("batch", int, 8), ("ngf", int, 32), ("ndf", int, 32),
                                ("K", int, 2), ("zc", int, 8), ("zdown", int, 8), ("noise-max", float, 0.3),
                                ("inf-noise", float, 0.0), ("kl", float, 1.0), ("prior-gan", int, 1),
                                ("gan", float, 0.1), ("l1", float, 100.0), ("dropout", float, 0.0),
                                ("frames", int, 500), ("temp", float, 1.0), ("motion-cond", int, 0),
                                ("inf-motion", float, 1.0), ("wta", int, 0), ("fm", int, 0), ("fm-scale", float, 0.0),
                                ("roll", int, 0), ("roll-gan", float, 1.0), ("ema", float, 0.0),
                                ("anchor", float, 0.0), ("warp", float, 0.0), ("l1roll", int, 0),
                                ("reverse", float, 0.0), ("stride", int, 1)):
        p.add_argument(f"--{name}", type=kind, default=default)
    p.add_argument("--load", default="", help="measure the saved weights of this tag instead of training")
    p.add_argument("--library", default="", help="JSON TrainSettings overrides: train with videogen.train")
    p.add_argument("--deterministic", action="store_true",
                   help="with --library: roll out with dropout off (the row's tag gets -dropout-off; the model is "
                        "the tag's, trained once)")
    p.add_argument("--work", type=Path, default=Path("work/heads"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--table", action="store_true", help="print the rows of --results and stop")
    args = p.parse_args(argv)
    if (args.reverse or args.stride > 1) and (args.anchor or args.l1roll):
        p.error("--reverse / --stride do not combine with --anchor or --l1roll (their examples carry no continuation)")
    if args.fm:  # the flow head's "latent" is the noisy residual itself, at full resolution
        args.zc, args.zdown = 3, 1
    return args


def clip_data(clip: str, work: Path) -> tuple[np.ndarray, dict]:
    data = prepared(clip, work)
    return np.load(data / "frames.npy"), json.loads((data / "dataset.json").read_text())


class Recipe:
    """A generator with optional latent / noise-level / flow inputs, its critic, and one training step."""

    def __init__(self, args, frames: np.ndarray, train: tuple[int, int]):
        import keras
        import tensorflow as tf

        from videogen import model as vm

        self.a, self.tf, self.vm = args, tf, vm
        self.S = frames.shape[1]
        self.L = self.S // args.zdown
        t0, t1 = train
        change = (frames[t0 + 1:t1].astype(np.float32) - frames[t0:t1 - 1]) / 127.5
        self.median = float(np.median(np.abs(change).mean((1, 2, 3))))
        self.scale = args.fm_scale or float(1.0 / max(change.std(), 1e-3))
        self.gen = self.build_generator(keras)
        self.disc = vm.build_discriminator(self.S, args.ndf, args.K)
        self.anchor_disc = vm.build_discriminator(self.S, args.ndf, 1) if args.anchor else None
        self.enc = self.build_encoder(keras) if args.zc and not (args.wta or args.fm) else None
        self.g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_vars = self.gen.trainable_variables + (self.enc.trainable_variables if self.enc else [])
        self.step = tf.function(self._step, reduce_retracing=True)

    def build_generator(self, keras):
        a, S, vm, tf = self.a, self.S, self.vm, self.tf
        layers = keras.layers
        fr = keras.Input((S, S, 3 * a.K), name="frames")
        z = keras.Input((self.L, self.L, max(a.zc, 1)), name="z")
        lv = keras.Input((2,), name="level")
        parts = [fr] + ([layers.UpSampling2D(a.zdown)(z)] if a.zc else [])
        if a.noise_max > 0 or a.motion_cond or a.fm:
            parts.append(layers.UpSampling2D(S)(layers.Reshape((1, 1, 2))(lv)))
        x = layers.Concatenate()(parts) if len(parts) > 1 else fr
        skips = []
        for i in range(vm.unet_depth(S)):
            x = vm._downsample(x, min(a.ngf * 2**i, a.ngf * 8), name=f"enc{i + 1}", batchnorm=i > 0, norm="group")
            skips.append(x)
        for j, skip in enumerate(reversed(skips[:-1])):
            level = len(skips) - 2 - j
            x = vm._upsample(x, min(a.ngf * 2**level, a.ngf * 8), name=f"dec{j + 1}",
                             dropout=a.dropout if j < 3 else 0.0, norm="group")
            x = layers.Concatenate(name=f"dec{j + 1}_skip")([x, skip])
        if a.fm:  # velocity of the residual's flow, unbounded
            return keras.Model([fr, z, lv], layers.Conv2DTranspose(3, 4, strides=2, padding="same",
                                                                    dtype="float32")(x))
        delta = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",
                                       kernel_initializer="zeros")(x)
        delta = layers.Rescaling(2.0, dtype="float32")(delta)
        last = layers.Lambda(lambda t: t[..., -3:], output_shape=(S, S, 3), dtype="float32")(fr)
        if a.warp:  # a flow head: the last frame warped by a predicted flow (at most --warp px), plus the change
            flow = layers.Conv2DTranspose(2, 4, strides=2, padding="same", activation="tanh",
                                          kernel_initializer="zeros")(x)
            flow = layers.Rescaling(a.warp, dtype="float32")(flow)
            last = backward_warp_layer()(dtype="float32")([last, flow])
        out = layers.Lambda(lambda t: tf.clip_by_value(t[0] + t[1], -1.0, 1.0), output_shape=(S, S, 3),
                            dtype="float32")([last, delta])
        return keras.Model([fr, z, lv], out)

    def build_encoder(self, keras):
        a = self.a
        x = inp = keras.Input((self.S, self.S, 3 * a.K + 3))
        for i in range(int(np.log2(a.zdown))):
            x = self.vm._downsample(x, min(a.ngf * 2**i, a.ngf * 4), name=f"e{i}", batchnorm=i > 0, norm="group")
        return keras.Model(inp, keras.layers.Conv2D(2 * a.zc, 3, padding="same", dtype="float32")(x))

    def _inputs(self, ctx, tgt):
        a, tf = self.a, self.tf
        B = tf.shape(ctx)[0]
        if a.noise_max > 0:
            sigma = tf.random.uniform([B, 1], 0, a.noise_max)
            noisy, level = ctx + sigma[:, :, None, None] * tf.random.normal(tf.shape(ctx)), sigma / a.noise_max
        else:
            noisy, level = ctx, tf.zeros([B, 1])
        change = tf.reduce_mean(tf.abs(tgt - ctx[..., -3:]), [1, 2, 3])[:, None]
        code = tf.math.log((change + 1e-3) / (self.median + 1e-3)) if a.motion_cond else tf.zeros([B, 1])
        return noisy, level, code

    def _flow_step(self, ctx, tgt, noisy, level):
        tf = self.tf
        r = (tgt - ctx[..., -3:]) * self.scale
        eps = tf.random.normal(tf.shape(r))
        t = tf.random.uniform([tf.shape(r)[0], 1])
        xt = t[:, :, None, None] * r + (1 - t[:, :, None, None]) * eps
        with tf.GradientTape() as tape:
            v = self.gen([noisy, xt, tf.concat([level, t], -1)], training=True)
            loss = tf.reduce_mean(tf.square(v - (r - eps)))
        self.g_opt.apply_gradients(zip(tape.gradient(loss, self.g_vars), self.g_vars))
        return loss, 0.0, 0.0, 0.0

    def _best_of(self, ctx, tgt, noisy, level):
        a, tf, vm, S = self.a, self.tf, self.vm, self.S
        M, B = a.wta, tf.shape(ctx)[0]
        rep = lambda t: tf.concat([t] * M, 0)  # noqa: E731
        outs = self.gen([rep(noisy), tf.random.normal([M * B, self.L, self.L, a.zc]), rep(level)], training=True)
        outs = tf.reshape(outs, [M, B, S, S, 3])
        best = tf.argmin(tf.reduce_mean(tf.abs(outs - tgt[None]), [2, 3, 4]), 0)
        winner = tf.gather(tf.transpose(outs, [1, 0, 2, 3, 4]), best, batch_dims=1)
        rl = tf.cast(self.disc([ctx, tgt], training=True), tf.float32)
        fl = tf.cast(self.disc([ctx, outs[0]], training=True), tf.float32)
        _, g_gan, _ = vm.generator_loss(fl, outs[0], tgt, a.gan, a.l1)
        g_l1 = tf.reduce_mean(tf.abs(winner - tgt))
        return a.gan * g_gan + a.l1 * g_l1, g_gan, g_l1, vm.discriminator_loss(rl, fl), 0.0

    def _latent_gan(self, ctx, tgt, noisy, level):
        a, tf, vm = self.a, self.tf, self.vm
        B = tf.shape(ctx)[0]
        if a.zc:
            stats = self.enc(tf.concat([ctx, tgt], -1), training=True)
            mu, logvar = stats[..., :a.zc], tf.clip_by_value(stats[..., a.zc:], -10.0, 5.0)
            z = mu + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mu))
            kl = tf.reduce_mean(tf.reduce_sum(0.5 * (mu**2 + tf.exp(logvar) - 1.0 - logvar), [1, 2, 3]))
            kl = kl / (self.S * self.S * 3)
        else:
            z, kl = tf.zeros([B, self.L, self.L, 1]), 0.0
        fake = self.gen([noisy, z, level], training=True)
        rl = tf.cast(self.disc([ctx, tgt], training=True), tf.float32)
        fl = tf.cast(self.disc([ctx, fake], training=True), tf.float32)
        total, g_gan, g_l1 = vm.generator_loss(fl, fake, tgt, a.gan, a.l1)
        d_loss = vm.discriminator_loss(rl, fl)
        if a.roll:
            roll_g, roll_d, rolled = self._own_rollout(ctx, fake, z, level, rl)
            total, d_loss = total + roll_g, 0.5 * (d_loss + roll_d)
            if a.anchor:
                anchor_g, anchor_d = self._anchored(ctx[..., -3:], [fake] + rolled, tgt)
                total, d_loss = total + anchor_g, d_loss + anchor_d
        if a.l1roll:  # fed-back steps against the real continuation, gradients through the chain (BPTT)
            cur, frame = ctx, fake
            for j in range(a.l1roll):
                cur = tf.concat([cur[..., 3:], frame], -1)
                frame = self.gen([cur, z, level], training=True)
                logits = tf.cast(self.disc([cur, frame], training=True), tf.float32)
                total += vm.generator_loss(logits, frame, self.future[..., 3 * j:3 * j + 3], a.gan, a.l1)[0]
        if a.zc and a.prior_gan:  # samples from the prior must look real too, or inference-time z is ignored
            fake_p = self.gen([noisy, tf.random.normal(tf.shape(z)), level], training=True)
            fpl = tf.cast(self.disc([ctx, fake_p], training=True), tf.float32)
            total = total + vm.generator_loss(fpl, fake_p, tgt, a.gan, 0.0)[0]
            d_loss = 0.5 * (d_loss + vm.discriminator_loss(rl, fpl))
        return total + a.kl * kl, g_gan, g_l1, d_loss, kl

    def _own_rollout(self, ctx, fake, z, level, real_logits):
        """Self Forcing (Huang et al. 2025, arXiv:2506.08009) with a GAN critic: the generator continues its own
        output for ``--roll`` steps (each step's context detached) and the critic, which sees the context and the
        next frame, tells these (context, next) clips from real ones. No L1: the rollout is judged by the critic
        alone, which matches distributions instead of punishing every divergence from one real continuation.
        Returns the generator's and critic's losses and the rolled-out frames."""
        a, tf, vm = self.a, self.tf, self.vm
        g_loss, d_loss, frame, frames = 0.0, 0.0, fake, []
        cur, level = ctx, tf.zeros_like(level)  # generation's inputs: no context noise, no motion code
        for _ in range(a.roll):
            cur = tf.concat([cur[..., 3:], tf.stop_gradient(frame)], -1)
            frame = self.gen([cur, z, level], training=True)
            frames.append(frame)
            logits = tf.cast(self.disc([cur, frame], training=True), tf.float32)
            g_loss += a.roll_gan * vm.generator_loss(logits, frame, frame, 1.0, 0.0)[1] / a.roll
            d_loss += vm.discriminator_loss(real_logits, logits) / a.roll
        return g_loss, d_loss, frames

    def _anchored(self, start, fakes, tgt):
        """A critic anchored to the clip: it sees the real start frame and a frame 1 to ``--roll`` + 1 steps later,
        the real one or the generator's own continuation, so a rollout that loses the start's scene, or freezes
        where the clip moves, is told from the real future. Training only: generation runs the network alone."""
        a, tf, vm = self.a, self.tf, self.vm
        real = [tgt] + [self.future[..., 3 * j:3 * j + 3] for j in range(a.roll)]
        cond = tf.concat([start] * len(real), 0)
        rl = tf.cast(self.anchor_disc([cond, tf.concat(real, 0)], training=True), tf.float32)
        fl = tf.cast(self.anchor_disc([cond, tf.concat(fakes, 0)], training=True), tf.float32)
        return a.anchor * vm.generator_loss(fl, fl, fl, 1.0, 0.0)[1], vm.discriminator_loss(rl, fl)

    def _step(self, ctx_u8, tgt_u8):
        tf = self.tf
        ctx, tgt = to_float(tf, ctx_u8), to_float(tf, tgt_u8)
        if self.a.anchor or self.a.l1roll:  # the real continuation rides on the context's channels through the jitter
            ctx, self.future = ctx[..., :3 * self.a.K], ctx[..., 3 * self.a.K:]
        noisy, level, code = self._inputs(ctx, tgt)
        if self.a.fm:
            return self._flow_step(ctx, tgt, noisy, level)
        level = tf.concat([level, code], -1)
        with tf.GradientTape(persistent=True) as tape:
            head = self._best_of if self.a.wta else self._latent_gan
            total, g_gan, g_l1, d_loss, kl = head(ctx, tgt, noisy, level)
        self.g_opt.apply_gradients(zip(tape.gradient(total, self.g_vars), self.g_vars))
        d_vars = self.disc.trainable_variables + (self.anchor_disc.trainable_variables if self.a.anchor else [])
        self.d_opt.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))
        return g_l1, g_gan, kl, d_loss

    def predict(self, ctx_u8: np.ndarray, seed: int) -> np.ndarray:
        """The next frame (uint8) of each context ``(B, S, S, 3K)``: the network alone."""
        a, tf = self.a, self.tf
        B, ctx = len(ctx_u8), to_float(tf, ctx_u8)
        g = tf.random.Generator.from_seed(seed)
        if a.inf_noise > 0:
            ctx = ctx + a.inf_noise * g.normal(tf.shape(ctx))
        noise_level = a.inf_noise / a.noise_max if a.noise_max > 0 else 0.0
        if a.fm:
            x = a.temp * g.normal([B, self.S, self.S, 3])
            for i in range(a.fm):
                x = x + self.gen([ctx, x, tf.constant([[noise_level, i / a.fm]] * B)], training=False) / a.fm
            out = tf.clip_by_value(ctx[..., -3:] + x / self.scale, -1.0, 1.0)
        else:
            z = a.temp * g.normal([B, self.L, self.L, max(a.zc, 1)]) if a.zc else tf.zeros([B, self.L, self.L, 1])
            motion = float(np.log(a.inf_motion)) if a.motion_cond else 0.0
            out = self.gen([ctx, z, tf.constant([[noise_level, motion]] * B)], training=a.dropout > 0)
        return np.clip(np.round((out.numpy() + 1) * 127.5), 0, 255).astype(np.uint8)


def backward_warp_layer():
    """A Keras layer: ``[frame (B, H, W, C), flow (B, H, W, 2)]`` -> the frame sampled bilinearly at ``(x + flow_x,
    y + flow_y)`` (pixels, clamped to the frame), the backward warp of spatial transformer networks (Jaderberg et al.
    2015, arXiv:1506.02025): differentiable in the flow, each output pixel a convex combination of four input
    pixels. Checked against ``cv2.remap`` (INTER_LINEAR, BORDER_REPLICATE) to 1e-7."""
    import keras

    ops = keras.ops

    class BackwardWarp(keras.layers.Layer):
        def call(self, inputs):
            frame, flow = inputs
            shape = ops.shape(frame)
            b, h, w, c = shape[0], shape[1], shape[2], shape[3]
            x = ops.clip(ops.cast(ops.arange(w), "float32")[None, None, :] + flow[..., 0], 0.0, w - 1.0)
            y = ops.clip(ops.cast(ops.arange(h), "float32")[None, :, None] + flow[..., 1], 0.0, h - 1.0)
            x0, y0 = ops.floor(x), ops.floor(y)
            fx, fy = (x - x0)[..., None], (y - y0)[..., None]
            x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
            x1, y1 = ops.minimum(x0 + 1, w - 1), ops.minimum(y0 + 1, h - 1)
            flat = ops.reshape(frame, (-1, c))
            base = (ops.arange(b, dtype="int32") * (h * w))[:, None, None]

            def at(yy, xx):
                return ops.reshape(ops.take(flat, ops.reshape(base + yy * w + xx, (-1,)), axis=0), shape)

            return (at(y0, x0) * (1 - fx) + at(y0, x1) * fx) * (1 - fy) + (at(y1, x0) * (1 - fx) + at(y1, x1) * fx) * fy

        def compute_output_shape(self, input_shape):
            return input_shape[0]

    return BackwardWarp


def to_float(tf, x):
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def train_recipe(args, frames: np.ndarray, info: dict) -> tuple[Recipe, float]:
    import tensorflow as tf

    from videogen.train.data import jitter

    recipe = Recipe(args, frames, tuple(info["train"]))
    weights = args.work / f"{args.load or args.tag}_{args.clip}_s{args.seed}.weights.h5"
    if args.load:
        recipe.gen.load_weights(weights)
        return recipe, 0.0
    t0, t1 = info["train"]
    # The anchored critic and the fed-back L1 steps need the real frames their rollouts stand for.
    ahead = args.roll if args.anchor else args.l1roll
    starts = np.arange(t0 + args.K - 1, t1 - 1 - ahead)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    ema = EMA(recipe.gen, args.ema) if args.ema else None
    for it in range(args.steps):
        if args.reverse or args.stride > 1:
            ctx, tgt = speed_examples(frames, (t0, t1), args, rng)
        else:
            pick = rng.choice(starts, args.batch, replace=False)
            ctx = np.stack([np.concatenate([context(frames, i, args.K)] + [frames[i + 2 + j] for j in range(ahead)],
                                           -1) for i in pick])
            tgt = frames[pick + 1]
        seeds = rng.integers(0, 2**31, size=(args.batch, 2))
        pairs = [jitter(tf.constant(c), tf.constant(t), recipe.S, tf.constant(s))
                 for c, t, s in zip(ctx, tgt, seeds)]
        losses = recipe.step(tf.stack([c for c, _ in pairs]), tf.stack([t for _, t in pairs]))
        if ema:
            ema.update(tf.constant(min(args.ema, (1 + it) / (10 + it)), tf.float32))
        if it % 300 == 0 or it == args.steps - 1:
            print(f"step {it} loss {float(losses[0]):.4f} {time.time() - started:.0f}s", flush=True)
    if ema:
        ema.swap_in()
    recipe.gen.save_weights(weights)
    return recipe, time.time() - started


def speed_examples(frames: np.ndarray, train: tuple[int, int], args, rng: np.random.Generator):
    """A batch of (context, next frame) at a random frame stride in 1..``--stride`` and, with probability
    ``--reverse``, played backwards: the same appearance is seen moving both ways and at several speeds, so the
    motion to predict has to be read from the context frames, not from what the frame shows."""
    t0, t1 = train
    ctx, tgt = [], []
    for _ in range(args.batch):
        stride = int(rng.integers(1, args.stride + 1))
        backwards = rng.random() < args.reverse
        first = int(rng.integers(t0, t1 - stride * args.K))  # the lowest frame index used
        idx = first + np.arange(args.K + 1) * stride
        if backwards:
            idx = idx[::-1]
        ctx.append(np.concatenate([frames[i] for i in idx[:-1]], -1))
        tgt.append(frames[idx[-1]])
    return np.stack(ctx), np.stack(tgt)


class EMA:
    """An exponential moving average of the generator's weights, measured instead of the last weights (Yazici et
    al. 2019, "The Unusual Effectiveness of Averaging in GAN Training", arXiv:1806.04498); decay warmed up as
    min(decay, (1 + t) / (10 + t)) like TensorFlow's ExponentialMovingAverage with num_updates."""

    def __init__(self, model, decay: float):
        import tensorflow as tf

        self.model = model
        self.shadow = [tf.Variable(tf.cast(w, tf.float32), trainable=False) for w in model.weights]
        self.update = tf.function(self._update)

    def _update(self, decay):
        import tensorflow as tf

        for e, w in zip(self.shadow, self.model.weights):
            e.assign(decay * e + (1.0 - decay) * tf.cast(w, tf.float32))

    def swap_in(self) -> None:
        for e, w in zip(self.shadow, self.model.weights):
            w.assign(e.numpy().astype(w.dtype))


def context(frames: np.ndarray, i: int, k: int) -> np.ndarray:
    return np.concatenate([frames[i - k + 1 + j] for j in range(k)], -1)


def library_predictor(args, info: dict):
    """Train with the project's trainer (demo settings plus ``--library`` overrides); its rollout, dropout on."""
    from videogen.frames import rollout
    from videogen.generator_io import load_generator
    from videogen.train import TrainSettings, train

    model_dir = args.work / f"{args.tag}_{args.clip}_s{args.seed}"
    settings = dict(max_steps=args.steps, batch_size=args.batch, ngf=args.ngf, ndf=args.ndf, context_frames=args.K,
                    log_every=300, checkpoint_every=100000, seed=args.seed)
    settings.update(json.loads(args.library))
    started = time.time()
    if not (model_dir / "model.json").exists():
        train(args.work / f"data_{args.clip}", model_dir, TrainSettings(**settings))
    gen, meta = load_generator(model_dir)
    args.K = int(meta["context_frames"])

    def run(ctx: np.ndarray, n: int, seed: int) -> np.ndarray:
        return np.stack(list(rollout(gen, ctx, n, args.K, deterministic=args.deterministic, seed=seed)), 1)
    return run, time.time() - started


def measure(run, args, frames: np.ndarray, info: dict) -> dict:
    """Rollout PSNR from every held-out start against copying (only where context and continuation are one shot,
since 2026-12-07: earlier rows of bikes include starts whose continuation crosses its cut at frame 242); two long
videos from one start, judged."""
    from videogen import video_quality as vq
    from videogen.measures import one_shot, psnr_per_image

    (t0, t1), (v0, v1) = info["train"], info["val"]
    res: dict = {}
    starts = np.arange(v0 + args.K - 1, v1 - 1)
    roll = run(np.stack([context(frames, i, args.K) for i in starts]), 20, 7)
    scored = one_shot(frames[:v1], starts, args.K - 1, (1, 5, 10, 20))  # within the val block and one shot
    for k in (1, 5, 10, 20):
        ok = np.flatnonzero(scored[k])
        if len(ok):
            real = frames[starts[ok] + k]
            res[f"psnr_{k}"] = float(np.mean(psnr_per_image(roll[ok, k - 1], real)))
            res[f"copy_{k}"] = float(np.mean(psnr_per_image(frames[starts[ok]], real)))
    videos = run(np.stack([context(frames, v0 + args.K - 1, args.K)] * 2), args.frames, 11)
    ref = vq.reference(frames[t0:t1], frames[v0:v1])
    for v in range(2):
        scores = vq.judge(videos[v], ref=ref)
        res[f"video{v}"] = {m: [None if x is None else round(x, 3) for x in scores[m]] for m in MEASURES}
        res[f"video{v}"]["failed"] = scores["verdict"]["failed"]
    res["diversity"] = vq.diversity(list(videos), frames)["diversity"]
    np.save(args.work / f"{args.tag}{'-dropout-off' if args.deterministic else ''}_{args.clip}_s{args.seed}.npy",
            videos[0])
    return res


def table(rows: list[dict]) -> str:
    lines = ["| recipe | clip | seed | psnr_1 (copy) | psnr_5 (copy) | psnr_10 (copy) | motion first, last window | "
             "realism | spacetime | sharpness | diversity | failed |", "|" + " --- |" * 12]
    for r in rows:
        v = r["video0"]
        psnr = [f"{r[f'psnr_{k}']:.2f} ({r[f'copy_{k}']:.2f})" for k in (1, 5, 10)]
        lines.append(f"| {r['tag']} | {r['clip']} | {r['seed']} | " + " | ".join(psnr)
                     + f" | {v['motion'][0]:.2f}, {v['motion'][-1]:.2f} | {v['realism'][-1]:.2f} | "
                     f"{v['spacetime'][-1]:.2f} | {v['sharpness'][-1]:.2f} | {r['diversity']:.2f} | "
                     f"{', '.join(v['failed'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.table:
        import keras
        import tensorflow as tf

        from videogen.hardware import cpu_has_bf16

        if cpu_has_bf16():
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        tf.random.set_seed(args.seed)
        args.work.mkdir(parents=True, exist_ok=True)
        frames, info = clip_data(args.clip, args.work)
        if args.library:
            run, train_s = library_predictor(args, info)
        else:
            recipe, train_s = train_recipe(args, frames, info)

            def run(ctx: np.ndarray, n: int, seed: int) -> np.ndarray:
                out, ctx = [], ctx.copy()
                for t in range(n):
                    out.append(recipe.predict(ctx, seed * 100003 + t))
                    ctx = np.concatenate([ctx[..., 3:], out[-1]], -1)
                return np.stack(out, 1)
        row = {"tag": args.tag + ("-dropout-off" if args.deterministic else ""), "clip": args.clip, "seed": args.seed, "train_s": round(train_s, 1),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               **measure(run, args, frames, info)}
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
