"""Long-horizon experiment harness: train a next-frame pix2pix with optional unrolled (fed-back) training and context
noise, roll it out 2000 frames with optional generation-time controls, score with score.py. One JSON line per run.

Usage (run from the repo root, one at a time, under nice):
    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/quality/long/harness.py --clip bikes --name base \
        --steps 1200 [--unroll 3 --l1-steps 1 ...] [--frames 2000]

The generator/discriminator come from videogen.model (same architecture as the product: U-Net, residual output,
GroupNorm, K=2 context frames on channels, PatchGAN). Training precision: mixed bfloat16 as the product's `auto`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--clip", required=True, help="bikes|bunny|carphone or a dataset dir")
    p.add_argument("--name", required=True)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--gan", type=float, default=0.1)
    p.add_argument("--l1", type=float, default=100.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="mixed_bfloat16")
    # unrolled training
    p.add_argument("--unroll", type=int, default=1, help="fed-back steps per training example (gradient through them)")
    p.add_argument("--unroll-from", type=float, default=0.0, help="share of steps before unrolling starts")
    p.add_argument("--l1-steps", type=int, default=99, help="unrolled steps (from the first) that get the L1 loss")
    p.add_argument("--l1-later", type=float, default=0.0, help="L1 weight for unrolled steps after --l1-steps")
    p.add_argument("--gan-later", type=float, default=None, help="GAN weight for later steps (default --gan)")
    p.add_argument("--stop-grad", action="store_true", help="no gradient through fed-back frames")
    p.add_argument("--pool-depth", type=int, default=0, help="DAgger pool: rollout depth (0 = off)")
    p.add_argument("--pool-starts", type=int, default=32)
    p.add_argument("--pool-every", type=int, default=100)
    p.add_argument("--pool-mix", type=float, default=0.5)
    p.add_argument("--pool-from", type=float, default=0.25, help="share of steps before the pool is used")
    p.add_argument("--ctx-noise", type=float, default=0.0, help="max std of noise on the context (per-sample U(0,max))")
    p.add_argument("--ctx-blur", type=float, default=0.0, help="prob of blurring the context during training")
    # generation
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--videos", type=int, default=3)
    p.add_argument("--gen-dropout", default="on")
    p.add_argument("--gen-noise", type=float, default=0.0, help="std of noise added to the context at generation")
    p.add_argument("--delta-clip", type=float, default=0.0, help="clip |residual| per step at generation (0 = off)")
    p.add_argument("--tau", type=float, default=1.0, help="scale the predicted change: last + tau*(G(x)-last)")
    p.add_argument("--anchor", type=float, default=0.0,
                   help="blend each generated frame toward its nearest training frame (L2) by this share")
    p.add_argument("--renorm", type=float, default=0.0, help="pull per-channel mean/std toward the clip's (rate)")
    p.add_argument("--project", default="", help="generation-time projector: '' or 'patchnn'")
    p.add_argument("--project-alpha", type=float, default=1.0)
    p.add_argument("--project-every", type=int, default=1)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--results", default=str(HERE / "results.jsonl"))
    p.add_argument("--model-dir", default="", help="reuse a trained generator.keras (skip training)")
    return p.parse_args()


def dataset_dir(clip: str) -> Path:
    if Path(clip).is_dir():
        return Path(clip)
    if clip.startswith("synth_"):
        import synth
        return synth.make(clip[6:], REPO / "work" / "long" / "data" / clip)
    from prep import dataset
    return dataset(clip)


def train(args, frames: np.ndarray, info: dict, out: Path):
    import keras
    import tensorflow as tf

    from videogen.model import build_discriminator, build_generator

    keras.utils.set_random_seed(args.seed)
    size, k, u = frames.shape[1], args.k, args.unroll
    first, end = info["train"]
    train_frames = tf.constant(frames[first:end + 1])  # pairs first..end-1 -> frames first..end
    n = int(train_frames.shape[0])
    prev = keras.config.dtype_policy()
    keras.config.set_dtype_policy(args.precision)
    g = build_generator(size, args.ngf, k, True, norm="group", dropout=args.dropout)
    d = build_discriminator(size, args.ndf, k)
    keras.config.set_dtype_policy(prev)
    from videogen.optim import FusedAdam
    g_opt, d_opt = FusedAdam(args.lr, beta_1=0.5), FusedAdam(args.lr, beta_1=0.5)
    g_opt.build(g.trainable_variables)
    d_opt.build(d.trainable_variables)
    big = int(round(1.12 * size))
    gan_later = args.gan if args.gan_later is None else args.gan_later

    def batch(unroll):
        length = k + unroll
        idx = tf.random.uniform([args.batch], 0, n - length + 1, dtype=tf.int32)
        seq = tf.gather(train_frames, idx[:, None] + tf.range(length)[None])  # (B, L, S, S, 3)
        seq = tf.reshape(tf.transpose(seq, [0, 2, 3, 1, 4]), [args.batch, size, size, 3 * length])
        seq = tf.image.resize(tf.cast(seq, tf.float32), [big, big])
        oy = tf.random.uniform([args.batch], 0, big - size + 1, dtype=tf.int32)
        ox = tf.random.uniform([args.batch], 0, big - size + 1, dtype=tf.int32)
        seq = tf.map_fn(lambda a: tf.slice(a[0], tf.stack([a[1], a[2], 0]), [size, size, 3 * length]),
                        (seq, oy, ox), fn_output_signature=tf.float32)
        flip = tf.random.uniform([args.batch, 1, 1, 1]) < 0.5
        seq = tf.where(flip, tf.reverse(seq, [2]), seq)
        seq = tf.round(seq) / 127.5 - 1.0
        return [seq[..., 3 * j:3 * j + 3] for j in range(length)]

    def bce(logits, label):
        logits = tf.cast(logits, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.fill(tf.shape(logits), tf.constant(label, tf.float32)), logits=logits))

    def corrupt(x):
        if args.ctx_noise > 0:
            sigma = tf.random.uniform([args.batch, 1, 1, 1], 0, args.ctx_noise)
            x = x + sigma * tf.random.normal(tf.shape(x))
        if args.ctx_blur > 0:
            blurred = tf.nn.avg_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), 3, 1, "VALID")
            pick = tf.random.uniform([args.batch, 1, 1, 1]) < args.ctx_blur
            x = tf.where(pick, blurred, x)
        return x

    depth = args.pool_depth
    m = int(round(args.pool_mix * args.batch))
    if depth:
        pool_ctx = tf.Variable(tf.zeros([args.pool_starts * depth, size, size, 3 * k]), trainable=False)
        pool_tgt = tf.Variable(tf.zeros([args.pool_starts * depth, size, size, 3]), trainable=False)

        @tf.function
        def refresh():
            idx = tf.random.uniform([args.pool_starts], 0, n - k - depth, dtype=tf.int32)
            ctx = tf.concat([tf.gather(train_frames, idx + j) for j in range(k)], -1)
            ctx = tf.cast(ctx, tf.float32) / 127.5 - 1
            cs, ts = [], []
            for j in range(depth):
                y = tf.cast(g(ctx, training=True), tf.float32)  # dropout on, as in generation
                y = tf.round((tf.clip_by_value(y, -1, 1) + 1) * 127.5) / 127.5 - 1
                ctx = tf.concat([ctx[..., 3:], y], -1)
                cs.append(ctx)
                ts.append(tf.cast(tf.gather(train_frames, idx + k + j + 1), tf.float32) / 127.5 - 1)
            pool_ctx.assign(tf.concat(cs, 0))
            pool_tgt.assign(tf.concat(ts, 0))

    def make_step(unroll, use_pool=False):
        @tf.function(reduce_retracing=True)
        def step():
            seq = batch(unroll)
            if use_pool:
                pick = tf.random.uniform([m], 0, args.pool_starts * depth, dtype=tf.int32)
                pc, pt = tf.gather(pool_ctx, pick), tf.gather(pool_tgt, pick)
                flip = tf.random.uniform([m, 1, 1, 1]) < 0.5
                pc = tf.where(flip, tf.reverse(pc, [2]), pc)
                pt = tf.where(flip, tf.reverse(pt, [2]), pt)
                seq = [tf.concat([pc[..., 3 * j:3 * j + 3], seq[j][m:]], 0) for j in range(k)] + \
                      [tf.concat([pt, seq[k][m:]], 0)]
            with tf.GradientTape(persistent=True) as tape:
                ctx = list(seq[:k])
                g_loss, d_loss, l1_first = 0.0, 0.0, 0.0
                for j in range(unroll):
                    cond = tf.concat(ctx[-k:], -1)
                    fake = tf.cast(g(corrupt(cond), training=True), tf.float32)
                    target = seq[k + j]
                    l1 = tf.reduce_mean(tf.abs(fake - target))
                    if j == 0:
                        l1_first = l1
                    real_cond = tf.concat(seq[j:j + k], -1)
                    fake_logits = d([cond, fake], training=True)
                    real_logits = d([real_cond, target], training=True)
                    w_l1 = args.l1 if j < args.l1_steps else args.l1_later
                    w_gan = args.gan if j == 0 else gan_later
                    g_loss += (w_l1 * l1 + w_gan * bce(fake_logits, 1.0)) / unroll
                    d_loss += 0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0)) / unroll
                    # fed back as the generator would see it: rounded to uint8 levels (straight-through)
                    fed = fake + tf.stop_gradient(tf.round((fake + 1) * 127.5) / 127.5 - 1 - fake)
                    ctx.append(tf.stop_gradient(fed) if args.stop_grad else fed)
            gg = tape.gradient(g_loss, g.trainable_variables)
            dg = tape.gradient(d_loss, d.trainable_variables)
            del tape
            g_opt.apply_gradients(zip(gg, g.trainable_variables))
            d_opt.apply_gradients(zip(dg, d.trainable_variables))
            return g_loss, d_loss, l1_first
        return step

    steps = {1: make_step(1)}
    if u > 1:
        steps[u] = make_step(u)
    if depth:
        steps["pool"] = make_step(1, use_pool=True)
    pool_start = int(args.steps * args.pool_from)
    switch = int(args.steps * args.unroll_from) if u > 1 else args.steps
    t0 = time.time()
    images = 0
    for i in range(args.steps):
        fn = steps[u] if (u > 1 and i >= switch) else steps[1]
        if depth and i >= pool_start:
            if (i - pool_start) % args.pool_every == 0:
                refresh()
            fn = steps["pool"]
        gl, dl, l1 = fn()
        images += args.batch * (u if fn is steps.get(u) and u > 1 else 1)
        if (i + 1) % 200 == 0:
            print(f"step {i + 1} g {float(gl):.3f} d {float(dl):.3f} l1 {float(l1):.4f} {time.time() - t0:.0f}s",
                  flush=True)
    train_s = time.time() - t0
    export = build_generator(size, args.ngf, k, True, norm="group", dropout=args.dropout)
    export.set_weights(g.get_weights())
    out.mkdir(parents=True, exist_ok=True)
    export.save(out / "generator.keras")
    return export, train_s, args.steps * args.batch / train_s


def _patch_bank(train_frames: np.ndarray, patch: int, bank: int, seed: int):
    """A seeded bank of ``bank`` random ``patch`` x ``patch`` training patches in [-1, 1], flattened, with their
    squared norms (nearest neighbours by one matrix product), and the frame size."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    t, size = train_frames.shape[:2]
    ti = rng.integers(0, t, bank)
    yi, xi = rng.integers(0, size - patch + 1, bank), rng.integers(0, size - patch + 1, bank)
    dy, dx = np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij")
    b = train_frames[ti[:, None, None], yi[:, None, None] + dy, xi[:, None, None] + dx]
    flat = tf.constant(b.reshape(bank, -1).astype(np.float32) / 127.5 - 1)
    return flat, tf.reduce_sum(flat ** 2, 1), size


class PatchProjector:
    """Non-learned projection onto the training frames' patches: each 8x8 block (stride 4, overlapping) of a frame is
    replaced by its nearest training patch (L2), overlaps averaged, blended with alpha."""

    def __init__(self, train_frames: np.ndarray, patch: int = 8, stride: int = 4, bank: int = 40000, seed: int = 0):
        self.p, self.s = patch, stride
        self.bank, self.bank_sq, self.size = _patch_bank(train_frames, patch, bank, seed)

    def __call__(self, x):
        """x: (V, S, S, 3) float in [-1, 1] -> projected."""
        import tensorflow as tf
        p, s = self.p, self.s
        v = tf.shape(x)[0]
        pt = tf.image.extract_patches(x, [1, p, p, 1], [1, s, s, 1], [1, 1, 1, 1], "VALID")  # (V, h, w, p*p*3)
        h = pt.shape[1]
        q = tf.reshape(pt, [-1, p * p * 3])
        d2 = -2.0 * q @ tf.transpose(self.bank) + self.bank_sq[None]
        nn = tf.gather(self.bank, tf.argmin(d2, 1))
        nn = tf.reshape(nn, [v, h, h, p, p, 3])
        # fold back (overlap-add) with counts
        out = tf.zeros_like(x)
        cnt = tf.zeros_like(x[..., :1])
        acc = []
        for iy in range(h):
            for ix in range(h):
                acc.append(((iy * s, ix * s), nn[:, iy, ix]))
        for (y, xx), patch in acc:
            pad = [[0, 0], [y, self.size - y - p], [xx, self.size - xx - p], [0, 0]]
            out += tf.pad(patch, pad)
            cnt += tf.pad(tf.ones_like(patch[..., :1]), pad)
        return out / tf.maximum(cnt, 1.0)


class BlockProjector:
    """Cheaper projection: non-overlapping 8x8 blocks on a grid shifted by (t*3) mod 8 px each frame (rolled, so the
    seams move and average out over time); each block replaced by its nearest training patch (L2)."""

    def __init__(self, train_frames: np.ndarray, patch: int = 8, bank: int = 40000, seed: int = 0):
        self.p = patch
        self.bank, self.bank_sq, self.size = _patch_bank(train_frames, patch, bank, seed)

    def __call__(self, x, t):
        import tensorflow as tf
        p, s = self.p, self.size
        off = (t * 3) % p
        xr = tf.roll(x, shift=tf.stack([off, off]), axis=[1, 2])
        v = tf.shape(x)[0]
        blocks = tf.reshape(tf.transpose(tf.reshape(xr, [v, s // p, p, s // p, p, 3]), [0, 1, 3, 2, 4, 5]),
                            [-1, p * p * 3])
        d2 = -2.0 * blocks @ tf.transpose(self.bank) + self.bank_sq[None]
        nn = tf.gather(self.bank, tf.argmin(d2, 1))
        y = tf.reshape(tf.transpose(tf.reshape(nn, [v, s // p, s // p, p, p, 3]), [0, 1, 3, 2, 4, 5]), [v, s, s, 3])
        return tf.roll(y, shift=tf.stack([-off, -off]), axis=[1, 2])


def generate(model, frames: np.ndarray, info: dict, args, rng: np.random.Generator) -> np.ndarray:
    """(V, T, S, S, 3) uint8: V videos from the SAME start context (first training frames), different noise."""
    import tensorflow as tf
    k = args.k
    first = info["train"][0]
    start = np.stack([frames[first + j] for j in range(k)])  # (K,S,S,3)
    ctx = np.concatenate(list(start), -1)[None].repeat(args.videos, 0)  # (V,S,S,3K)
    train_frames = frames[info["train"][0]:info["train"][1] + 1].astype(np.float32) / 127.5 - 1
    mean = tf.constant(train_frames.mean((0, 1, 2)))
    std = tf.constant(train_frames.std((0, 1, 2)))
    proj = None
    if args.project == "patchnn":
        proj = PatchProjector(frames[info["train"][0]:info["train"][1] + 1])
    elif args.project == "block":
        bp = BlockProjector(frames[info["train"][0]:info["train"][1] + 1])
        proj = None

    training = args.gen_dropout == "on"
    flat_train = tf.constant(train_frames.reshape(len(train_frames), -1))
    flat_sq = tf.reduce_sum(flat_train ** 2, 1)

    @tf.function
    def step(c, t):
        x = tf.cast(c, tf.float32) / 127.5 - 1
        xin = x + args.gen_noise * tf.random.normal(tf.shape(x)) if args.gen_noise > 0 else x
        y = tf.cast(model(xin, training=training), tf.float32)
        last = x[..., -3:]
        if args.tau != 1.0:
            y = last + args.tau * (y - last)
        if args.delta_clip > 0:
            y = last + tf.clip_by_value(y - last, -args.delta_clip, args.delta_clip)
        if args.renorm > 0:
            m = tf.reduce_mean(y, [1, 2], keepdims=True)
            sd = tf.math.reduce_std(y, [1, 2], keepdims=True)
            target = (y - m) / (sd + 1e-3) * std + mean
            y = (1 - args.renorm) * y + args.renorm * target
        if proj is not None and args.project_every > 0:
            do = tf.equal(t % args.project_every, 0)
            y = tf.cond(do, lambda: (1 - args.project_alpha) * y + args.project_alpha * proj(y), lambda: y)
        if args.project == "block":
            y = tf.clip_by_value(y, -1, 1)
            y = (1 - args.project_alpha) * y + args.project_alpha * bp(y, t)
        if args.anchor > 0:
            q = tf.reshape(y, [tf.shape(y)[0], -1])
            nn = tf.argmin(-2.0 * q @ tf.transpose(flat_train) + flat_sq[None], 1)
            y = (1 - args.anchor) * y + args.anchor * tf.reshape(tf.gather(flat_train, nn), tf.shape(y))
        y = tf.clip_by_value(y, -1, 1)
        f = tf.cast(tf.round((y + 1) * 127.5), tf.uint8)
        return tf.concat([c[..., 3:], f], -1) if k > 1 else f, f

    c = tf.constant(ctx)
    out = np.empty((args.videos, args.frames) + frames.shape[1:], np.uint8)
    for t in range(args.frames):
        c, f = step(c, tf.constant(t))
        out[:, t] = f.numpy()
    return out


def one_step(model, frames: np.ndarray, info: dict, k: int) -> dict:
    v0, v1 = info["val"]
    pairs = np.arange(max(v0, k - 1), v1)
    x = np.stack([np.concatenate([frames[max(v0, p - k + 1 + j)] for j in range(k)], -1) for p in pairs])
    y = frames[pairs + 1].astype(np.float32)
    pred = model(x.astype(np.float32) / 127.5 - 1, training=False)
    pred = np.clip(np.round((np.asarray(pred, np.float32) + 1) * 127.5), 0, 255)
    copy = frames[pairs].astype(np.float32)

    def psnr(a, b):
        mse = ((a - b) ** 2).mean((1, 2, 3))
        return float(np.mean(10 * np.log10(255 ** 2 / np.maximum(mse, 1e-6))))
    return {"psnr_model": round(psnr(pred, y), 2), "psnr_copy": round(psnr(copy, y), 2)}


def main():
    args = parse()
    import keras
    from score import Reference, passes, score_video

    ddir = dataset_dir(args.clip)
    frames = np.load(ddir / "frames.npy")
    info = json.loads((ddir / "dataset.json").read_text())
    out = REPO / "work" / "long" / "models" / f"{Path(args.clip).name}_{args.name}"
    if args.model_dir:
        model = keras.models.load_model(Path(args.model_dir) / "generator.keras", compile=False)
        train_s, ips = None, None
    else:
        model, train_s, ips = train(args, frames, info, out)
    os1 = one_step(model, frames, info, args.k)
    synth_res = {}
    if Path(args.clip).name.startswith("synth_"):
        import synth
        kind = Path(args.clip).name[6:]
        synth_res = {"synth_off": synth.score(model, kind, args.k),
                     "synth_on": synth.score(model, kind, args.k, training=args.gen_dropout == "on")}
        print(synth_res, flush=True)
    t0 = time.time()
    videos = generate(model, frames, info, args, np.random.default_rng(args.seed))
    gen_s = time.time() - t0
    vid_dir = REPO / "work" / "long" / "videos"
    vid_dir.mkdir(parents=True, exist_ok=True)
    np.save(vid_dir / f"{Path(args.clip).name}_{args.name}.npy", videos[0])
    ref = Reference(ddir)
    s = score_video(videos[0], ref)
    # diversity: mean abs difference between videos 0 and 1 at frame 100 and at the end (0-255 units)
    div = {}
    if args.videos > 1:
        div = {f"div_{t}": round(float(np.abs(videos[0, t].astype(int) - videos[1, t].astype(int)).mean()), 2)
               for t in (min(99, args.frames - 1), args.frames - 1)}
    res = {"name": args.name, "clip": Path(args.clip).name, "steps": args.steps, "train_s": train_s and round(train_s),
           "img_s": ips and round(ips, 1), "gen_s": round(gen_s), "one_step": os1, **synth_res, **s, **div,
           "pass": passes(s), "args": vars(args), "date": time.strftime("%H:%M")}
    with open(args.results, "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "args"}), flush=True)


if __name__ == "__main__":
    main()
