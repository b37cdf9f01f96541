"""ms per train step and per generated frame of the generator with BatchNorm vs GroupNorm (256 px, ngf/ndf 64, batch 1
by default), to report what the norm choice costs. Few steps: a quick figure, not a benchmark (see bench/ for those).

    .venv/bin/python bench/quality/norm_speed.py [--size 256] [--ngf 64] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def median_ms(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--norms", default="batch,group")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from videogen import frames as frames_module
    from videogen import generate as gen
    from videogen.model import build_discriminator, build_generator
    from videogen.train import make_train_step

    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8))
    target = tf.constant(rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8))
    for norm in args.norms.split(","):
        keras.utils.set_random_seed(0)
        g = build_generator(args.size, args.ngf, 1, True, norm=norm)
        d = build_discriminator(args.size, args.ngf, 1)
        go, do = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
        step = tf.Variable(0, dtype=tf.int64)
        train_step = make_train_step(g, d, go, do, step, gan_weight=1.0, l1_weight=100.0, input_noise=0.0,
                                     batch_size=args.batch, image_size=args.size, context_frames=1)
        train_ms = median_ms(lambda ts=train_step: [float(v) for v in ts(inputs, target)], args.steps)
        row = [f"{norm}: train step {train_ms:.0f} ms"]
        for precision in ("float32", "bfloat16"):
            copy = gen.inference_copy(g, precision)
            frames_module.freeze_batchnorm(copy)
            for deterministic in (True, False):
                fn = frames_module.make_step(copy, 1, deterministic)
                row.append(f"generate {precision} dropout {'off' if deterministic else 'on'} "
                           f"{median_ms(lambda f=fn: f(inputs)[1].numpy(), args.steps):.0f} ms/frame")
        print(f"{args.size} px ngf {args.ngf} batch {args.batch} | " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
