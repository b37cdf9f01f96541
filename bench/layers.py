"""Per-layer time of the generation network (the inference copy `videogen generate` runs), at K rollouts.

Each layer runs alone as its own `tf.function` on the inputs the layer really gets, so every row carries about
0.2 ms of call overhead that the fused rollout step does not pay; the rows show where time goes and how much batching
K rollouts helps each layer, with each layer's GFLOP/s (convolutions only; 2 x multiply-adds).

``--precision auto`` (the default) is what `videogen generate` picks here: bfloat16 on a CPU with native bf16, else
float32 (also with ``ONEDNN_MAX_CPU_ISA=AVX2``, how an AVX2-only CPU is reproduced on a newer one).

Usage: ``python -m bench.layers [--size 256] [--ngf 64] [--ks 1 8] [--repeats 10] [--precision auto]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def layer_times(size: int, ngf: int, ks: list[int], repeats: int,
                precision: str = "bfloat16") -> dict[int, list[tuple[str, str, float, float]]]:
    """``{K: [(layer name, class, ms per call, GFLOP per image), ...]}`` in network order."""
    import keras
    import tensorflow as tf

    from bench.run import make_model_dir
    from videogen import generate as gen

    with tempfile.TemporaryDirectory(prefix="videogen-layers-") as tmp:
        model, _ = gen.load_generator(make_model_dir(Path(tmp) / "model", size, ngf))
    network = gen.inference_copy(model, precision)
    channels = int(network.input_shape[-1])
    layers = [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]
    results: dict[int, list[tuple[str, str, float, float]]] = {}
    for k in ks:
        x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (k, size, size, channels)).astype(np.float32))
        rows = []
        for layer in layers:
            inputs = layer.input if isinstance(layer.input, list) else [layer.input]
            values = keras.Model(network.inputs, inputs)(x, training=True)
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            call = tf.function(lambda *a, layer=layer: layer(list(a) if len(a) > 1 else a[0], training=True))
            for _ in range(3):
                call(*values)
            started = time.perf_counter()
            for _ in range(repeats):
                out = call(*values)
            np.asarray(out).ravel()[:1]
            ms = (time.perf_counter() - started) / repeats * 1000
            gflop = 0.0
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                kh, kw = layer.kernel_size
                if isinstance(layer, keras.layers.Conv2DTranspose):
                    spatial, c_in = values[0].shape[1] * values[0].shape[2], values[0].shape[3]
                else:
                    spatial, c_in = out.shape[1] * out.shape[2], values[0].shape[3]
                gflop = 2 * spatial * c_in * layer.filters * kh * kw / 1e9
            rows.append((layer.name, type(layer).__name__, ms, gflop))
        results[k] = rows
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--precision", default="auto", help="auto (what generation picks here), float32 or bfloat16")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from videogen.hardware import resolve_precision

    precision = resolve_precision(args.precision, on_gpu=False)
    print(f"precision: {precision}")
    results = layer_times(args.size, args.ngf, args.ks, args.repeats, precision)
    header = "| layer | class | GFLOP/img | " + " | ".join(f"K={k} ms/img (GFLOP/s)" for k in args.ks) + " |"
    print(header)
    print("|" + " --- |" * (3 + len(args.ks)))
    for i, (name, cls, _, gflop) in enumerate(results[args.ks[0]]):
        cells = []
        for k in args.ks:
            ms = results[k][i][2] / k
            cells.append(f"{ms:.2f}" + (f" ({gflop / ms * 1000:.0f})" if gflop else ""))
        print(f"| {name} | {cls} | {gflop:.2f} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"{sum(r[2] for r in results[k]) / k:.1f}" for k in args.ks)
    print(f"| **sum of the rows** | | {sum(r[3] for r in results[args.ks[0]]):.2f} | {totals} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
