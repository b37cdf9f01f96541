"""GPU part of the bench, for GPU machines where TensorFlow is not installed (the lent H100 has JAX, not TensorFlow,
and TensorFlow's ~600 MB wheel cannot be carried there): the same ``generator.keras`` / the same ``videogen.model``
networks run through Keras 3 on the JAX backend, with the same BN-folded inference copy
(``videogen.generate.inference_copy``) and the same step (uint8 in, uint8 out, window shift) under ``jax.jit``
with ``lax.scan`` over chunks of frames. Training is a pix2pix step (G and D, Adam 2e-4/0.5, GAN + 100 L1) written with
``stateless_call`` + ``jax.grad``: the same models and loss, not ``videogen.train`` (which is TensorFlow).

Writes bench/results-gpu.json and bench/results-gpu.md (or under --out). These are GPU figures; never mix them with
the CPU table. Usage: ``KERAS_BACKEND=jax python -m bench.gpu [--out DIR]``
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import SEED_TRAIN_IMAGES_PER_S_V100, make_model_dir, stats  # noqa: E402


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def bench_generate(model_path: Path, frames: int, num_videos: int, precision: str, deterministic: bool, chunk: int,
                   repeats: int, out_file: Path) -> dict:
    import jax
    import jax.numpy as jnp
    import keras

    from videogen.generate import inference_copy, npy_header

    model = keras.models.load_model(model_path, compile=False)
    inf = inference_copy(model, precision)
    size = int(model.input_shape[1])
    tv = [v.value for v in inf.trainable_variables]
    ntv0 = [v.value for v in inf.non_trainable_variables]

    def step(tv, carry, _):
        ntv, ctx = carry
        x = ctx.astype(jnp.float32) * (1.0 / 127.5) - 1.0
        y, ntv = inf.stateless_call(tv, ntv, x, training=not deterministic)
        frame = jnp.clip(jnp.round((y.astype(jnp.float32) + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
        return (ntv, jnp.concatenate([ctx[..., 3:], frame], axis=-1)), frame  # shift the K-frame window

    @jax.jit
    def run_chunk(tv, ntv, ctx):
        (ntv, ctx), out = jax.lax.scan(lambda c, i: step(tv, c, i), (ntv, ctx), None, length=chunk)
        return ntv, ctx, out

    channels = int(model.input_shape[-1])
    start = np.random.default_rng(0).integers(0, 256, (num_videos, size, size, channels), dtype=np.uint8)
    t = time.perf_counter()
    jax.block_until_ready(run_chunk(tv, ntv0, jnp.asarray(start)))
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        ntv, ctx = ntv0, jnp.asarray(start)
        with open(out_file, "wb") as f:  # streamed to disk exactly as generate() writes frames.npy
            f.write(npy_header((frames, num_videos, size, size, 3)))
            pending = None
            for _ in range(-(-frames // chunk)):
                ntv, ctx, out = run_chunk(tv, ntv, ctx)  # async dispatch: the next chunk runs while we write
                if pending is not None:
                    f.write(np.asarray(pending).tobytes())
                pending = out
            last = np.asarray(pending)
            rest = frames - (-(-frames // chunk) - 1) * chunk
            f.write(last[:rest].tobytes())
        times.append(time.perf_counter() - t)
    return {"image_size": size, "frames": frames, "num_videos": num_videos, "precision": precision,
            "dropout": not deterministic, "chunk": chunk, "compile_s": compile_s, "seconds": stats(times),
            "total_frames_per_s": stats([frames * num_videos / s for s in times])}


def bench_train(size: int, ngf: int, batch: int, precision: str, steps: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import keras

    from videogen.model import build_discriminator, build_generator
    from videogen.train import TrainSettings

    defaults = TrainSettings()  # the networks `videogen train` builds by default
    k = defaults.context_frames
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        g = build_generator(size, ngf, k, defaults.residual, norm=defaults.norm, dropout=defaults.dropout)
        d = build_discriminator(size, ngf, k)
    finally:
        keras.config.set_dtype_policy("float32")
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
    g_opt.build(g.trainable_variables)
    d_opt.build(d.trainable_variables)
    state = ([v.value for v in g.trainable_variables], [v.value for v in g.non_trainable_variables],
             [v.value for v in d.trainable_variables], [v.value for v in d.non_trainable_variables],
             [v.value for v in g_opt.variables], [v.value for v in d_opt.variables])

    def bce(logits, label):
        logits = logits.astype(jnp.float32)
        return jnp.mean(jnp.maximum(logits, 0) - logits * label + jnp.log1p(jnp.exp(-jnp.abs(logits))))

    @jax.jit
    def train_step(state, x, y):
        gtv, gntv, dtv, dntv, gov, dov = state

        def g_loss_fn(gtv):
            fake, new_gntv = g.stateless_call(gtv, gntv, x, training=True)
            logits, _ = d.stateless_call(dtv, dntv, [x, fake], training=True)
            l1 = jnp.mean(jnp.abs(y - fake.astype(jnp.float32)))
            return bce(logits, 1.0) + 100.0 * l1, (fake, new_gntv)

        def d_loss_fn(dtv, fake):
            real, dntv1 = d.stateless_call(dtv, dntv, [x, y], training=True)
            fake_logits, dntv2 = d.stateless_call(dtv, dntv1, [x, jax.lax.stop_gradient(fake)], training=True)
            return 0.5 * (bce(real, 1.0) + bce(fake_logits, 0.0)), dntv2

        (g_loss, (fake, gntv)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(gtv)
        (d_loss, dntv), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(dtv, fake)
        gtv, gov = g_opt.stateless_apply(gov, g_grads, gtv)
        dtv, dov = d_opt.stateless_apply(dov, d_grads, dtv)
        return (gtv, gntv, dtv, dntv, gov, dov), g_loss, d_loss

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3 * k)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))
    t = time.perf_counter()
    state, gl, dl = train_step(state, x, y)
    jax.block_until_ready(gl)
    compile_s = time.perf_counter() - t
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            state, gl, dl = train_step(state, x, y)
        jax.block_until_ready((gl, dl))
        rates.append(batch * steps / (time.perf_counter() - t))
    return {"image_size": size, "ngf": ngf, "batch": batch, "precision": precision, "compile_s": compile_s,
            "steps_per_run": steps, "images_per_s": stats(rates), "final_losses": [float(gl), float(dl)],
            "vs_seed_55_img_s": statistics.median(rates) / SEED_TRAIN_IMAGES_PER_S_V100}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import jax
    import keras

    results = {"machine": {"gpu": gpu_name(), "jax": jax.__version__, "keras": keras.__version__,
                           "backend": keras.backend.backend(), "devices": [str(d) for d in jax.devices()],
                           "cpu_cores": os.cpu_count(),
                           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
               "generation": [], "training": [], "errors": []}
    q = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in ([64] if q else [256, 128]):
            model_dir = make_model_dir(tmp / f"m{size}", size, 8 if q else 64)
            for frames, k, prec, det in ([(20, 1, "bfloat16", False)] if q else
                                         [(2000, 1, "bfloat16", False), (2000, 1, "float32", False),
                                          (2000, 1, "bfloat16", True), (500, 8, "bfloat16", False),
                                          (250, 32, "bfloat16", False)]):
                if size == 128 and (prec != "bfloat16" or det):
                    continue
                try:
                    r = bench_generate(model_dir / "generator.keras", frames, k, prec, det, 100 if not q else 10,
                                       args.repeats, tmp / "frames.npy")
                    print(json.dumps(r), flush=True)
                    results["generation"].append(r)
                except Exception as err:  # keep the other figures
                    results["errors"].append(f"generate {size} K={k} {prec}: {type(err).__name__}: {err}")
                    print(results["errors"][-1], flush=True)
        for batch, prec in ([(2, "bfloat16")] if q else
                            [(1, "float32"), (16, "float32"), (16, "bfloat16"), (64, "bfloat16"), (128, "bfloat16")]):
            try:
                r = bench_train(64 if q else 256, 8 if q else 64, batch, prec, 3 if q else 10, args.repeats)
                print(json.dumps(r), flush=True)
                results["training"].append(r)
            except Exception as err:
                results["errors"].append(f"train batch {batch} {prec}: {type(err).__name__}: {err}")
                print(results["errors"][-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results-gpu.json").write_text(json.dumps(results, indent=2))
    m = results["machine"]
    lines = [f"GPU figures: {m['gpu']}, measured {m['date']} with Keras {m['keras']} on JAX {m['jax']} "
             f"(`python -m bench.gpu`; TensorFlow is not installed there). Median (min-max) of {args.repeats} runs "
             f"after compile.", "", "| what | figure | goal |", "| --- | --- | --- |"]
    for r in results["generation"]:
        s = r["seconds"]
        lines.append(f"| generate {r['image_size']} px, {r['frames']} frames x {r['num_videos']} video(s), "
                     f"{r['precision']}, dropout {'on' if r['dropout'] else 'off'} | {s['median']:.2f} s "
                     f"({s['min']:.2f}-{s['max']:.2f}); {r['total_frames_per_s']['median']:.0f} total frames/s; "
                     f"compile {r['compile_s']:.1f} s | 2000 frames < 10 s |")
    for r in results["training"]:
        i = r["images_per_s"]
        lines.append(f"| train step {r['image_size']} px batch {r['batch']} {r['precision']} (JAX, same models) | "
                     f"{i['median']:.0f} ({i['min']:.0f}-{i['max']:.0f}) img/s = {r['vs_seed_55_img_s']:.1f}x seed | "
                     f">= 1100 img/s |")
    for e in results["errors"]:
        lines.append(f"| error | {e} | |")
    (args.out / "results-gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
