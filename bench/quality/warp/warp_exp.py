"""Warp-based next-frame generator vs freezing (branch exp2).

One run = prepare clip (cached) -> train (compact tf.function loop, real training) -> generate N frames from one
frame under several generation-time motion controls -> score each with videogen.video_quality.judge.

Generator ("warp"): the repo's U-Net encoder/decoder (videogen.model._downsample/_upsample, GroupNorm, dropout), head =
flow (2 ch, max_flow * tanh, px) + small residual (3 ch, res_scale * tanh); next = clip(dense_warp(last, flow) + res).
Generator ("resid"): videogen.model.build_generator (the production residual model) for reference.

Loss: l1_weight * L1(next, target) + smooth_weight * mean|grad flow| + res_weight * mean|res| (+ gan_weight * GAN with
the repo's PatchGAN). best_of > 1: "best of many" (Bhattacharyya et al. 2018) over dropout draws: per-example min L1.

Generation controls (flow models): raw, clamp (flow *= clip(m_ref / mean|flow|, 0.5, 2)), match (same, [0.25, 4]).
m_ref = mean Farneback flow magnitude of the training pairs (stored with the model).

Usage:
  PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/quality/warp/warp_exp.py --clip bunny --steps 400 --frames 500 \
      --name w400 --arch warp
Appends one JSON line per (run, control) to work/warp/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CLIPS = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}


def prepare_clip(clip: str, work: Path, size: int = 64) -> Path:
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, prepare

    out = work / "data" / f"{clip}_{size}"
    if not (out / "dataset.json").exists():
        prepare(real_clip(CLIPS[clip]), out, PrepareSettings(image_size=size))
    return out


# ------------------------------------------------------------------------------------------------------------ model

def dense_warp(image, flow):
    """Bilinear backward warp: out[y, x] = image[y + flow_y, x + flow_x] (flow (B,H,W,2) in px, [...,0]=dx), edges
    clamped. Pure tf ops (gather with batch_dims), differentiable in image and flow."""
    import tensorflow as tf

    shape = tf.shape(image)
    b, h, w = shape[0], shape[1], shape[2]
    c = image.shape[-1]
    gy, gx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    x = gx[None] + flow[..., 0]
    y = gy[None] + flow[..., 1]
    wf, hf = tf.cast(w - 1, tf.float32), tf.cast(h - 1, tf.float32)
    x = tf.clip_by_value(x, 0.0, wf)
    y = tf.clip_by_value(y, 0.0, hf)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    ax = (x - x0)[..., None]
    ay = (y - y0)[..., None]
    x0i = tf.cast(x0, tf.int32)
    y0i = tf.cast(y0, tf.int32)
    x1i = tf.minimum(x0i + 1, w - 1)
    y1i = tf.minimum(y0i + 1, h - 1)
    flat = tf.reshape(image, [b, h * w, c])

    def g(yi, xi):
        return tf.reshape(tf.gather(flat, tf.reshape(yi * w + xi, [b, h * w]), batch_dims=1), [b, h, w, c])

    top = g(y0i, x0i) * (1 - ax) + g(y0i, x1i) * ax
    bot = g(y1i, x0i) * (1 - ax) + g(y1i, x1i) * ax
    return top * (1 - ay) + bot * ay


def nearest_warp(image, flow):
    """Like dense_warp but nearest-pixel sampling: no resampling blur at all (used on the anchor in Lagrangian
    rendering, where the accumulated displacement keeps the sub-pixel part of the motion)."""
    import tensorflow as tf

    shape = tf.shape(image)
    b, h, w = shape[0], shape[1], shape[2]
    c = image.shape[-1]
    gy, gx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    xi = tf.cast(tf.clip_by_value(tf.round(gx[None] + flow[..., 0]), 0.0, tf.cast(w - 1, tf.float32)), tf.int32)
    yi = tf.cast(tf.clip_by_value(tf.round(gy[None] + flow[..., 1]), 0.0, tf.cast(h - 1, tf.float32)), tf.int32)
    flat = tf.reshape(image, [b, h * w, c])
    return tf.reshape(tf.gather(flat, tf.reshape(yi * w + xi, [b, h * w]), batch_dims=1), [b, h, w, c])


def build_warp_net(size: int, ngf: int, k: int, max_flow: float, res_scale: float, dropout: float):
    """U-Net trunk of videogen.model; outputs (flow px (B,S,S,2), res (B,S,S,3))."""
    import keras

    from videogen import model as vm

    layers = keras.layers
    depth = vm.unet_depth(size)
    inputs = keras.Input((size, size, 3 * k), name="frames")
    skips, x = [], inputs
    for i in range(depth):
        x = vm._downsample(x, min(ngf * 2**i, ngf * 8), name=f"enc{i + 1}", batchnorm=i > 0, norm="group")
        skips.append(x)
    for j, skip in enumerate(reversed(skips[:-1])):
        level = depth - 2 - j
        x = vm._upsample(x, min(ngf * 2**level, ngf * 8), name=f"dec{j + 1}", dropout=dropout if j < 3 else 0.0,
                         norm="group")
        x = layers.Concatenate(name=f"dec{j + 1}_skip")([x, skip])
    x = layers.Conv2DTranspose(ngf, 4, strides=2, padding="same", name="head_up")(x)
    x = layers.LeakyReLU(0.2)(layers.Concatenate()([x, inputs]))
    x = layers.Conv2D(ngf, 3, padding="same", name="head_conv")(x)
    x = layers.LeakyReLU(0.2)(x)
    flow = layers.Conv2D(2, 3, padding="same", activation="tanh", kernel_initializer="zeros", name="flow")(x)
    flow = layers.Rescaling(max_flow, name="flow_px")(flow)
    res = layers.Conv2D(3, 3, padding="same", activation="tanh", kernel_initializer="zeros", name="res")(x)
    res = layers.Rescaling(res_scale, name="res_scale")(res)
    return keras.Model(inputs, [flow, res], name="warpnet")


def compose(inputs, flow, res, k: int):
    import tensorflow as tf

    last = inputs[..., 3 * (k - 1):]
    warped = dense_warp(last, flow)
    return tf.clip_by_value(warped + res, -1.0, 1.0), warped


# ------------------------------------------------------------------------------------------------------------ train

def farneback_mags(frames: np.ndarray) -> np.ndarray:
    from videogen.measures import flow_and_warp

    return flow_and_warp(frames)[0]


def make_examples(frames: np.ndarray, first: int, end: int, k: int):
    """All (context (S,S,3K) uint8, target) pairs of pairs [first, end), context clamped at first."""
    from videogen.frames import context_indices, stack_context

    xs, ys = [], []
    for p in range(first, end):
        block = frames[context_indices(p, first, k)]
        xs.append(stack_context(block))
        ys.append(frames[p + 1])
    return np.stack(xs), np.stack(ys)


def train(args, frames, tr, k):
    import keras
    import tensorflow as tf

    from videogen import model as vm

    tf.random.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    X, Y = make_examples(frames, tr[0], tr[1], k)
    F = np.zeros(X.shape[:3] + (2,), np.float32)
    if args.flow_sup > 0:  # teacher flow (backward convention: target(p) ~ last(p + F(p))), Farneback as the scorer
        import cv2

        from videogen.video_quality import FARNEBACK
        for i in range(len(X)):
            last = cv2.cvtColor(np.ascontiguousarray(X[i, ..., 3 * (k - 1):]), cv2.COLOR_RGB2GRAY)
            F[i] = cv2.calcOpticalFlowFarneback(cv2.cvtColor(Y[i], cv2.COLOR_RGB2GRAY), last, None, **FARNEBACK)
        print(f"teacher flow mean|F| {np.linalg.norm(F, axis=-1).mean():.3f} px", flush=True)
    X = X.astype(np.float32) / 127.5 - 1
    Y = Y.astype(np.float32) / 127.5 - 1
    size = frames.shape[1]
    if args.arch == "warp":
        net = build_warp_net(size, args.ngf, k, args.max_flow, args.res_scale, args.dropout)
    else:
        net = vm.build_generator(size, args.ngf, k, residual=True, norm="group", dropout=args.dropout)
    disc = vm.build_discriminator(size, args.ngf, k) if args.gan_weight > 0 else None
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    g_vars = net.trainable_variables

    def predict(x, training):
        if args.arch == "warp":
            flow, res = net(x, training=training)
            pred, _ = compose(x, flow, res, k)
            return pred, flow, res
        return net(x, training=training), None, None

    def context_noise(x):
        if args.ctx_noise <= 0:
            return x
        sig = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], 0, args.ctx_noise)
        return tf.clip_by_value(x + sig * tf.random.normal(tf.shape(x)), -1, 1)

    @tf.function
    def step(x, y, fl):
        xn = context_noise(x)
        with tf.GradientTape() as gt, tf.GradientTape() as dt:
            l1s, preds, flows, ress = [], [], [], []
            for _ in range(args.best_of):
                p, f, r = predict(xn, True)
                preds.append(p)
                flows.append(f)
                ress.append(r)
                l1s.append(tf.reduce_mean(tf.abs(y - p), axis=[1, 2, 3]))
            l1s = tf.stack(l1s)  # (N, B)
            best = tf.argmin(l1s, axis=0)
            l1 = tf.reduce_mean(tf.reduce_min(l1s, axis=0))
            loss = args.l1_weight * l1
            pred = preds[0]
            if args.best_of > 1:
                pick = tf.stack([tf.cast(best, tf.int32), tf.range(tf.shape(best)[0])], axis=1)
                pred = tf.gather_nd(tf.stack(preds), pick)
            if args.arch == "warp":
                f = tf.stack(flows)
                smooth = (tf.reduce_mean(tf.abs(f[:, :, 1:] - f[:, :, :-1])) +
                          tf.reduce_mean(tf.abs(f[:, :, :, 1:] - f[:, :, :, :-1])))
                rpen = tf.reduce_mean(tf.abs(tf.stack(ress)))
                loss += args.smooth_weight * smooth + args.res_weight * rpen
                if args.flow_sup > 0:
                    loss += args.flow_sup * tf.reduce_mean(tf.abs(f - fl[None]))
            if disc is not None:
                fake = disc([xn, pred], training=True)
                real = disc([xn, y], training=True)
                gan = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake), fake))
                loss += args.gan_weight * gan
                dloss = vm.discriminator_loss(real, fake)
        g_opt.apply_gradients(zip(gt.gradient(loss, g_vars), g_vars))
        if disc is not None:
            d_opt.apply_gradients(zip(dt.gradient(dloss, disc.trainable_variables), disc.trainable_variables))
        return l1

    n = len(X)
    t0 = time.perf_counter()
    for s in range(args.steps):
        idx = rng.integers(0, n, args.batch)
        x, y, fl = X[idx], Y[idx], F[idx]
        if rng.random() < 0.5:  # horizontal mirror, input and target together (and the teacher flow, dx negated)
            x, y, fl = x[:, :, ::-1], y[:, :, ::-1], fl[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)
        l1 = step(tf.constant(np.ascontiguousarray(x)), tf.constant(np.ascontiguousarray(y)),
                  tf.constant(np.ascontiguousarray(fl)))
        if (s + 1) % 100 == 0:
            print(f"step {s + 1} l1 {float(l1):.4f} {time.perf_counter() - t0:.0f}s", flush=True)
    train_s = time.perf_counter() - t0
    return net, predict, train_s


# ------------------------------------------------------------------------------------------------------------ generate

_BANK = {}


def patch_project(frame: np.ndarray, train_frames: np.ndarray, patch: int = 8, stride: int = 4) -> np.ndarray:
    """Replace every (patch x patch, stride) patch of ``frame`` (float [-1, 1], (S,S,3)) by its nearest training
    patch (L2, brute force) and average the overlaps: re-anchors the look onto the clip's patch distribution."""
    size = frame.shape[0]
    pos = [(y, x) for y in range(0, size - patch + 1, stride) for x in range(0, size - patch + 1, stride)]
    key = (id(train_frames), patch, stride)
    if key not in _BANK:
        tf_ = train_frames.astype(np.float32) / 127.5 - 1
        bank = np.concatenate([tf_[:, y:y + patch, x:x + patch].reshape(len(tf_), -1) for y, x in pos])
        _BANK[key] = (bank, (bank ** 2).sum(1))
    bank, bank_sq = _BANK[key]
    q = np.stack([frame[y:y + patch, x:x + patch].reshape(-1) for y, x in pos])
    nn = np.argmin(bank_sq[None] - 2 * q @ bank.T, axis=1)
    out = np.zeros_like(frame)
    cnt = np.zeros(frame.shape[:2] + (1,), np.float32)
    for (y, x), i in zip(pos, nn):
        out[y:y + patch, x:x + patch] += bank[i].reshape(patch, patch, 3)
        cnt[y:y + patch, x:x + patch] += 1
    return out / np.maximum(cnt, 1)


def generate(args, net, frames, start: int, k: int, control: str, m_ref: float, seed: int):
    """control: "raw" | "clamp" | "match" | "matchN" (scale clipped to [1/N, N]) | with suffix "+lagN": Lagrangian
    rendering - frames are ONE bilinear resample of an anchor frame by the accumulated (composed) displacement,
    re-anchored every N frames, so bilinear blur no longer compounds every step | "+momA": flow = A*prev + (1-A)*pred."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    ctx = [frames[start].astype(np.float32) / 127.5 - 1] * k
    out = [frames[start]]
    parts = control.split("+")
    base = parts[0]
    lag = next((int(q[3:]) for q in parts if q.startswith("lag")), 0)
    mom = next((float(q[3:]) for q in parts if q.startswith("mom")), 0.0)
    sampler = nearest_warp if "nn" in parts else dense_warp
    if base == "raw":
        lo, hi = 1.0, 1.0
    elif base == "clamp":
        lo, hi = 0.5, 2.0
    elif base == "match":
        lo, hi = 0.25, 4.0
    else:
        cap = float(base[5:])
        lo, hi = 1 / cap, cap

    @tf.function
    def one(x):
        if args.arch == "warp":
            return net(x, training=bool(args.gen_dropout))
        return net(x, training=bool(args.gen_dropout)), tf.zeros([1, 1, 1, 1])

    scales = []
    anchor = disp = prev_flow = None
    for t in range(1, args.frames):
        x = tf.constant(np.concatenate(ctx[-k:], axis=-1)[None])
        if args.arch == "warp":
            flow, res = one(x)
            if mom > 0 and prev_flow is not None:
                flow = mom * prev_flow + (1 - mom) * flow
            if base != "raw":
                mag = float(tf.reduce_mean(tf.norm(flow, axis=-1)))
                s = float(np.clip(m_ref / max(mag, 1e-6), lo, hi))
                flow = flow * s
                scales.append(s)
            prev_flow = flow
            if lag:
                if anchor is None or (t - 1) % lag == 0:
                    anchor = x[..., 3 * (k - 1):]
                    if "proj" in parts and t > 1:
                        stride = 8 if "proj8" in parts else 4  # proj8: non-overlapping patches, no averaging blur
                        anchor = tf.constant(patch_project(anchor[0].numpy(), args.train_frames,
                                                           stride=stride)[None])
                    disp = tf.zeros_like(flow)
                # out_{t}(p) = out_{t-1}(p + f(p)) = anchor(p + f(p) + D(p + f(p)))
                disp = flow + dense_warp(disp, flow)
                nxt = tf.clip_by_value(sampler(anchor, disp) + res, -1.0, 1.0)[0].numpy()
            else:
                nxt, _ = compose(x, flow, res, k)
                nxt = nxt[0].numpy()
        else:
            nxt = one(x)[0][0].numpy()
        u8 = np.clip(np.round((nxt + 1) * 127.5), 0, 255).astype(np.uint8)
        out.append(u8)
        ctx.append(u8.astype(np.float32) / 127.5 - 1)  # feed back the quantised frame, as a saved video would
    return np.stack(out), (float(np.mean(scales)) if scales else None)


def one_step_psnr(predict, frames, va, k):
    X, Y = make_examples(frames, va[0], va[1], k)
    Xf = X.astype(np.float32) / 127.5 - 1
    preds = []
    for i in range(0, len(Xf), 16):
        preds.append(predict(Xf[i:i + 16], False)[0].numpy())
    pred = np.clip(np.round((np.concatenate(preds) + 1) * 127.5), 0, 255)
    last = X[..., 3 * (k - 1):].astype(np.float32)
    y = Y.astype(np.float32)

    def psnr(a):
        mse = ((a - y) ** 2).mean(axis=(1, 2, 3))
        return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-3))))

    return psnr(pred), psnr(last)


def summarize(scores: dict) -> dict:
    v = scores["verdict"]
    dr = scores.get("drift") or {}
    mo = [m for m in scores["motion"] if m is not None]
    sh = [m for m in scores["sharpness"] if m is not None]
    return {"motion_min": round(min(mo), 3), "motion_max": round(max(mo), 3),
            "motion": [round(m, 2) if m is not None else None for m in scores["motion"]],
            "realism_last": round(scores["realism"][-1], 3), "realism": [round(r, 2) for r in scores["realism"]],
            "sharp_min": round(min(sh), 3), "sharp_max": round(max(sh), 3),
            "drift": round(dr["realism"], 3) if dr.get("realism") is not None else None,
            "replay": round(scores["replay_share"], 3), "ok": v["ok"], "failed": v["failed"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clip", required=True, choices=sorted(CLIPS))
    p.add_argument("--name", required=True)
    p.add_argument("--arch", default="warp", choices=["warp", "resid"])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--max_flow", type=float, default=8.0)
    p.add_argument("--res_scale", type=float, default=0.25)
    p.add_argument("--l1_weight", type=float, default=100.0)
    p.add_argument("--smooth_weight", type=float, default=1.0)
    p.add_argument("--res_weight", type=float, default=10.0)
    p.add_argument("--gan_weight", type=float, default=0.0)
    p.add_argument("--best_of", type=int, default=1)
    p.add_argument("--flow_sup", type=float, default=0.0, help="weight of L1 to the Farneback teacher flow (px)")
    p.add_argument("--ctx_noise", type=float, default=0.0)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--controls", default="raw,clamp,match")
    p.add_argument("--gen_dropout", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save_video", action="store_true")
    p.add_argument("--load", action="store_true", help="reuse work/warp/models/<clip>_<name>.keras (no training)")
    p.add_argument("--work", default=str(REPO / "work" / "warp"))
    args = p.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from videogen import artifacts
    from videogen.video_quality import judge

    work = Path(args.work)
    ds = artifacts.open_dataset(prepare_clip(args.clip, work))
    frames = np.asarray(ds.frames)
    tr, va = ds.block("train"), ds.block("val")
    train_frames, held = frames[tr[0]:tr[1] + 1], frames[va[0]:va[1] + 1]
    m_ref = float(farneback_mags(train_frames).mean())
    args.train_frames = train_frames
    model_path = work / "models" / f"{args.clip}_{args.name}.keras"
    if args.load:
        import keras

        net = keras.models.load_model(model_path, compile=False)
        meta = json.loads(model_path.with_suffix(".json").read_text())
        train_s, img_s = meta["train_s"], meta["img_s"]

        def predict(x, training):
            if args.arch == "warp":
                flow, res = net(x, training=training)
                return compose(x, flow, res, args.k)[0], flow, res
            return net(x, training=training), None, None
    else:
        net, predict, train_s = train(args, frames, tr, args.k)
        img_s = args.steps * args.batch * args.best_of / train_s
        model_path.parent.mkdir(parents=True, exist_ok=True)
        net.save(model_path)
        model_path.with_suffix(".json").write_text(json.dumps({"train_s": train_s, "img_s": img_s, "m_ref": m_ref,
                                                               "args": {a: v for a, v in vars(args).items()
                                                                        if a != "train_frames"}}))
    psnr_model, psnr_copy = one_step_psnr(predict, frames, va, args.k)
    if args.arch == "warp":  # teacher-forced predicted flow magnitude on training pairs (dropout off and on)
        Xt, _ = make_examples(frames, tr[0], tr[1], args.k)
        Xt = Xt[:64].astype(np.float32) / 127.5 - 1
        for tr_mode in (False, True):
            fl = predict(Xt, tr_mode)[1].numpy()
            print(f"teacher-forced mean|flow| (dropout {tr_mode}) {np.linalg.norm(fl, axis=-1).mean():.3f} px, "
                  f"mean flow vector {fl.mean(axis=(0, 1, 2))}", flush=True)
    print(f"trained {train_s:.0f}s {img_s:.1f} img/s; one-step PSNR {psnr_model:.2f} vs copy {psnr_copy:.2f}; "
          f"m_ref {m_ref:.3f}", flush=True)
    start = tr[0]
    controls = args.controls.split(",") if args.arch == "warp" else ["raw"]
    for control in controls:
        t0 = time.perf_counter()
        video, mean_scale = generate(args, net, frames, start, args.k, control, m_ref, args.seed)
        gen_s = time.perf_counter() - t0
        scores = judge(video, train_frames, held)
        row = {"name": args.name, "clip": args.clip, "control": control, "args": {a: v for a, v in vars(args).items() if a != "train_frames"},
               "train_s": round(train_s, 1), "img_s": round(img_s, 1), "gen_s": round(gen_s, 1),
               "psnr_model": round(psnr_model, 2), "psnr_copy": round(psnr_copy, 2), "m_ref": round(m_ref, 3),
               "mean_scale": mean_scale, **summarize(scores), "date": time.strftime("%H:%M")}
        print(json.dumps({k: row[k] for k in row if k != "args"}), flush=True)
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if args.save_video:
            np.save(work / f"video_{args.clip}_{args.name}_{control}.npy", video)


if __name__ == "__main__":
    main()
