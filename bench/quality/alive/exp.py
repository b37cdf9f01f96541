"""Generation-time controls on a trained demo generator, scored by the production scorer (videogen.video_quality).

Usage: exp.py CLIP NAME [--tau auto|FLOAT] [--anchor A] [--proj A] ... (see parse())
Model: work/alive/models/CLIP/generator.keras (bench/quality/long/base_train.py CLIP work/alive/models/CLIP 1200).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "quality" / "long"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("clip")
    p.add_argument("name")
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--tau", default="1", help="fixed change scale, or 'auto' (motion controller)")
    p.add_argument("--gain", type=float, default=0.1, help="auto tau: log-gain per step")
    p.add_argument("--ema", type=float, default=0.9, help="auto tau: EMA of measured motion")
    p.add_argument("--tau-max", type=float, default=8.0)
    p.add_argument("--anchor", default="0", help="blend toward nearest training frame; 'auto': controlled so that "
                   "patch distance to the training frames matches held-out frames'")
    p.add_argument("--anchor-gain", type=float, default=0.1)
    p.add_argument("--anchor-target", type=float, default=1.0, help="auto anchor: target ratio to held-out distance")
    p.add_argument("--proj", type=float, default=0.0, help="blend toward centre-pasted patch-NN projection")
    p.add_argument("--proj-every", type=int, default=1)
    p.add_argument("--bank", type=int, default=16384)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--sharp", default="", help="'auto': unsharp-mask amount controlled to the clip's Laplacian variance")
    p.add_argument("--sharp-gain", type=float, default=0.05)
    p.add_argument("--dropout", default="on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="")
    return p.parse_args()


class CentreProjector:
    """Each 4x4 tile of the frame is replaced by the centre of the nearest training patch (8x8, L2) to the 8x8 patch
    around it: context-matched, no overlap averaging (no blur)."""

    def __init__(self, train_uint8, patch=8, bank=16384, seed=0):
        import tensorflow as tf
        self.p, self.c = patch, patch // 2
        rng = np.random.default_rng(seed)
        t, s = train_uint8.shape[:2]
        ti = rng.integers(0, t, bank)
        yi, xi = rng.integers(0, s - patch + 1, bank), rng.integers(0, s - patch + 1, bank)
        dy, dx = np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij")
        b = train_uint8[ti[:, None, None], yi[:, None, None] + dy, xi[:, None, None] + dx].astype(np.float32) / 127.5 - 1
        self.bank = tf.constant(b.reshape(bank, -1))
        self.bank_sq = tf.reduce_sum(self.bank ** 2, 1)
        o = (patch - self.c) // 2
        self.centre = tf.constant(b[:, o:o + self.c, o:o + self.c].reshape(bank, -1))
        self.size = s

    def __call__(self, x):
        import tensorflow as tf
        p, c, s = self.p, self.c, self.size
        pad = (p - c) // 2
        xp = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        pt = tf.image.extract_patches(xp, [1, p, p, 1], [1, c, c, 1], [1, 1, 1, 1], "VALID")
        v, h = tf.shape(x)[0], s // c
        q = tf.reshape(pt, [-1, p * p * 3])
        nn = tf.argmin(self.bank_sq[None] - 2.0 * q @ tf.transpose(self.bank), 1)
        tiles = tf.reshape(tf.gather(self.centre, nn), [v, h, h, c, c, 3])
        return tf.reshape(tf.transpose(tiles, [0, 1, 3, 2, 4, 5]), [v, s, s, 3])


def source_motion(frames_uint8):
    from videogen import measures
    return float(np.mean(measures.flow_and_warp(frames_uint8)[0]))


def main():
    a = parse()
    import cv2
    import keras
    import tensorflow as tf
    from prep import dataset

    from videogen import measures
    from videogen import video_quality as vq
    from videogen.video_quality import FARNEBACK

    ddir = dataset(a.clip)
    frames = np.load(ddir / "frames.npy")
    info = json.loads((ddir / "dataset.json").read_text())
    (t0, t1), (v0, v1) = info["train"], info["val"]
    train = frames[t0:t1 + 1]
    model = keras.models.load_model(a.model or REPO / "work/alive/models" / a.clip / "generator.keras", compile=False)
    k = model.input_shape[-1] // 3
    target = source_motion(train)
    proj = CentreProjector(train, a.patch, a.bank, a.seed) if a.proj > 0 else None
    flat = tf.constant(train.reshape(len(train), -1).astype(np.float32) / 127.5 - 1)
    flat_sq = tf.reduce_sum(flat ** 2, 1)
    training = a.dropout == "on"
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.seed_generator.state.assign(np.array([a.seed * 7 + 1, 0], np.uint32).astype(layer.seed_generator.state.dtype))

    @tf.function(reduce_retracing=True)
    def unsharp(y, amount):
        k = tf.constant(np.outer(*(2 * [np.array([1, 4, 6, 4, 1], np.float32) / 16])))[:, :, None, None]
        k = tf.tile(k, [1, 1, 3, 1])
        b = tf.nn.depthwise_conv2d(tf.pad(y, [[0, 0], [2, 2], [2, 2], [0, 0]], "REFLECT"), k, [1, 1, 1, 1], "VALID")
        return y + amount[:, None, None, None] * (y - b)

    def step(c, tau, do_proj, amount, anc):
        x = tf.cast(c, tf.float32) / 127.5 - 1
        y = tf.cast(model(x, training=training), tf.float32)
        last = x[..., -3:]
        y = last + tau[:, None, None, None] * (y - last)
        y = tf.clip_by_value(y, -1, 1)
        if a.sharp:
            y = tf.clip_by_value(unsharp(y, amount), -1, 1)
        if a.anchor != "0":
            q = tf.reshape(y, [tf.shape(y)[0], -1])
            nn = tf.argmin(flat_sq[None] - 2.0 * q @ tf.transpose(flat), 1)
            w = anc[:, None, None, None]
            y = (1 - w) * y + w * tf.reshape(tf.gather(flat, nn), tf.shape(y))
        if proj is not None:
            y = tf.cond(do_proj, lambda: (1 - a.proj) * y + a.proj * proj(y), lambda: y)
        f = tf.cast(tf.round((tf.clip_by_value(y, -1, 1) + 1) * 127.5), tf.uint8)
        return (tf.concat([c[..., 3:], f], -1) if k > 1 else f), f

    start = np.concatenate([frames[v0 + j] for j in range(k)], -1)[None].repeat(a.videos, 0)
    c = tf.constant(start)
    auto = a.tau == "auto"
    tau = np.full(a.videos, 1.0 if auto else float(a.tau), np.float32)
    ema = np.full(a.videos, target)
    out = np.empty((a.videos, a.frames) + frames.shape[1:], np.uint8)
    prev = start[..., -3:]
    taus = []
    amount = np.zeros(a.videos, np.float32)
    sharp_target = float(np.mean([cv2.Laplacian(cv2.cvtColor(z, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for z in train]))
    amounts = []
    auto_anchor = a.anchor == "auto"
    anc = np.full(a.videos, 0.1 if auto_anchor else float(a.anchor), np.float32)
    ancs = []
    if auto_anchor:
        pbank = vq.sample_patches(train, np.random.default_rng(123).integers(0, len(train), 4096), 7,
                                   np.random.default_rng(124))
        held = frames[v0:v1 + 1]
        hq = vq.sample_patches(held, np.random.default_rng(125).integers(0, len(held), 2048), 7, np.random.default_rng(126))
        d_target = a.anchor_target * float(np.sqrt(measures.nearest_sq_distances(hq, pbank)).mean())
        prng = np.random.default_rng(127)
    t_start = time.time()
    for t in range(a.frames):
        c, f = step(c, tf.constant(tau), tf.constant(t % a.proj_every == 0), tf.constant(amount), tf.constant(anc))
        f = f.numpy()
        out[:, t] = f
        if auto:
            for v in range(a.videos):
                g0, g1 = (cv2.cvtColor(z[v], cv2.COLOR_RGB2GRAY) for z in (prev, f))
                m = float(np.linalg.norm(cv2.calcOpticalFlowFarneback(g0, g1, None, **FARNEBACK), axis=-1).mean())
                ema[v] = a.ema * ema[v] + (1 - a.ema) * m
                tau[v] = float(np.clip(tau[v] * np.exp(a.gain * np.log(target / max(ema[v], 1e-3))), 0.5, a.tau_max))
        if a.sharp:
            for v in range(a.videos):
                lv = cv2.Laplacian(cv2.cvtColor(f[v], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                amount[v] = float(np.clip(amount[v] + a.sharp_gain * np.log(sharp_target / max(lv, 1e-3)), -0.8, 3.0))
        if auto_anchor:
            for v in range(a.videos):
                qq = vq.sample_patches(f[v:v + 1], np.zeros(64, int), 7, prng)
                d = float(np.sqrt(measures.nearest_sq_distances(qq, pbank)).mean())
                anc[v] = float(np.clip(anc[v] * np.exp(a.anchor_gain * np.log(max(d, 1e-3) / d_target)), 0.01, 0.7))
        ancs.append(float(anc[0]))
        amounts.append(float(amount[0]))
        taus.append(float(tau[0]))
        prev = f
    gen_s = time.time() - t_start
    clip = frames
    ref = vq.reference(train, frames[v0:v1 + 1], clip, seed=0)
    res = {"clip": a.clip, "name": a.name, "args": vars(a), "gen_s": round(gen_s), "target_px": target}
    for v in range(min(a.videos, 2)):
        j = vq.judge(out[v], window=100, ref=ref)
        s = j
        res[f"v{v}"] = {
            "motion": [round(x, 2) if x is not None else None for x in s["motion"]],
            "realism": [round(x, 2) for x in s["realism"]], "sharp": [round(x, 2) for x in s["sharpness"]],
            "contrast": [round(x, 2) for x in s["contrast"]],
            "drift": {kk: round(vv, 2) for kk, vv in (s["drift"] or {}).items() if vv is not None},
            "replay": round(s["replay_share"], 3), "ok": s["verdict"]["ok"],
            "fail": {n: f["frame"] for n, f in s["verdict"]["failures"].items()}}
    if a.videos > 1:
        res["div"] = vq.diversity(list(out[:2]), clip)
    res["amount_q"] = [round(x, 2) for x in np.quantile(amounts, [0, 0.1, 0.5, 0.9, 1])]
    res["anc_q"] = [round(x, 2) for x in np.quantile(ancs, [0, 0.1, 0.5, 0.9, 1])]
    res["tau_q"] = [round(x, 2) for x in np.quantile(taus, [0, 0.1, 0.5, 0.9, 1])]
    odir = REPO / "work/alive/videos"
    odir.mkdir(parents=True, exist_ok=True)
    np.save(odir / f"{a.clip}_{a.name}.npy", out[0])
    sheet = np.concatenate([out[0, i] for i in (0, 50, 100, 300, 600, 1000, 1500, a.frames - 1) if i < a.frames], 1)
    real = np.concatenate([frames[min(v0 + i, len(frames) - 1)] for i in range(0, 32, 4)], 1)[:, :sheet.shape[1]]
    real = np.pad(real, ((0, 0), (0, sheet.shape[1] - real.shape[1]), (0, 0)))
    cv2.imwrite(str(odir / f"{a.clip}_{a.name}.png"), cv2.cvtColor(np.concatenate([sheet, real], 0), cv2.COLOR_RGB2BGR))
    with open(REPO / "work/alive/results.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")
    short = {kk: res[kk] for kk in ("clip", "name", "gen_s", "tau_q", "amount_q", "anc_q")}
    print(json.dumps(short))
    for v in ("v0", "v1"):
        if v in res:
            r = res[v]
            print(v, "ok" if r["ok"] else "FAIL", r["fail"], "motion", min(x for x in r["motion"] if x is not None),
                  max(x for x in r["motion"] if x is not None), "real_last", r["realism"][-1], "sharp",
                  min(r["sharp"]), max(r["sharp"]), "drift", r["drift"].get("realism"), "replay", r["replay"])
    if "div" in res:
        print("div", {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in res["div"].items()})


if __name__ == "__main__":
    main()
