"""`make bench`: generation, memory, training and prepare measured side by side in one run on this machine.

Writes ``bench/results-<kind>.json`` and ``bench/results-<kind>.md`` (or under ``--out``), where ``<kind>`` is what
TensorFlow's convolutions compute with here: ``bf16`` (AVX512_BF16 or AMX), ``avx512`` or ``avx2``, so one kind's
figures never stand in for another's; ``--update-docs`` replaces the table between ``<!-- bench:<kind>:start -->``
and ``<!-- bench:<kind>:end -->`` in docs/performance.md. ``--cpu avx2`` reproduces an AVX2-only CPU on a newer one: oneDNN
capped at AVX2 (``ONEDNN_MAX_CPU_ISA``, oneDNN "CPU Dispatcher Control") and OpenBLAS at Haswell kernels
(``OPENBLAS_CORETYPE``); TensorFlow's other kernels are built for AVX in the PyPI wheel and are the same on both. Every figure is the median of ``--repeats``
(>= 3) runs after a warm-up, with min and max. Random-weight models (speed does not depend on the weights).
``--quick`` is a smoke run at tiny sizes (a test calls it). Full run: about 20-25 minutes on 2 CPU cores.

Usage: ``python -m bench.run [--quick] [--core] [--cpu native|avx2] [--repeats N] [--out DIR] [--update-docs] [--skip PART ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("videogen.bench")

# The original workflow's figures: generation 20 s/frame on a K80 (process per frame), training 55 images/s on a V100.
SEED_TRAIN_IMAGES_PER_S_V100 = 55.0


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values),
            "values": [round(v, 6) for v in values]}


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Machine


def machine_info() -> dict:
    """The CPU and what it computes with: figures are filed under ``cpu_kind`` (bf16, avx512, avx2), never mixed."""
    import tensorflow as tf

    from videogen.hardware import cpu_flags, cpu_kind, cpuinfo_field, detect_device, onednn_isa_cap

    cpu = cpuinfo_field("model name") or platform.processor() or "unknown"
    try:
        mhz = float(cpuinfo_field("cpu MHz") or "")
    except ValueError:
        mhz = None
    flags = cpu_flags()
    device, _ = detect_device()
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
            "cpu_flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}),
            "cpu_kind": cpu_kind(), "cpu_mhz": mhz, "onednn_max_cpu_isa": onednn_isa_cap(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "device": device, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node()}


# FP32 FLOPs per cycle and core: two FMA units x 8 (AVX2) or 16 (AVX-512) lanes x 2 (Intel's and AMD's optimization
# manuals; Zen 4 runs AVX-512 on 256-bit units, so 64 is an upper bound there).
FLOPS_PER_CYCLE = {"avx2": 32, "avx512": 64, "bf16": 64}


def tensorflow_default_env(env: dict) -> dict:
    """``env`` for a program that leaves ``TF_ENABLE_ONEDNN_OPTS`` alone (the original workflow, the tutorial): the
    value TensorFlow would pick on the CPU measured (off on an AVX2-only one), not the one importing videogen set."""
    import videogen
    from videogen.hardware import tensorflow_onednn_default

    if videogen.ONEDNN_DEFAULTED:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if tensorflow_onednn_default() else "0"
    return env


def nominal_fp32_peak(machine: dict) -> float | None:
    """cores x clock x FP32 FLOPs per cycle (GFLOP/s), from /proc/cpuinfo's clock; None where unknown."""
    per_cycle = FLOPS_PER_CYCLE.get(machine.get("cpu_kind", ""))
    mhz = machine.get("cpu_mhz")
    return machine["cores"] * mhz / 1000.0 * per_cycle if per_cycle and mhz else None


def matmul_peak(n: int, repeats: int) -> dict:
    """fp32 matrix-multiply rate of this machine: numpy sgemm and tf.matmul on n x n."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    np_times = timed(lambda: a @ b, repeats)
    ta, tb = tf.constant(a), tf.constant(b)
    tf_times = timed(lambda: tf.matmul(ta, tb).numpy(), repeats)
    return {"n": n, "numpy_sgemm_gflops": stats([flops / t / 1e9 for t in np_times]),
            "tf_matmul_gflops": stats([flops / t / 1e9 for t in tf_times])}


# ----------------------------------------------------------------------------------------------------------------------
# FLOPs (analytic: convolutions dominate; elementwise ops, BN and the loss are < 1%)


def conv_flops(model) -> float:
    """Forward multiply-add FLOPs (2 per MAC) of the model's Conv2D / Conv2DTranspose layers for one image."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * cin * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            cin = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * cin * kh * kw * layer.filters
    return total


def train_step_flops(g_flops: float, d_flops: float) -> float:
    """Per image: G forward + backward (3x), D on real and fake forward (2x), D weight grads for both (2x) and the
    input grad through D for the G loss (1x): 3 G + 5 D."""
    return 3 * g_flops + 5 * d_flops


# ----------------------------------------------------------------------------------------------------------------------
# Fixtures: a random-weight model dir and a synthetic dataset dir


def make_model_dir(path: Path, size: int, ngf: int, context_frames: int | None = None,
                   steering_from: Path | None = None) -> Path:
    """A random-weight generator as `videogen train` builds it by default (context frames, norm, dropout), with the
    steering targets that `videogen train` saves beside it measured on the dataset ``steering_from`` (so that
    generation runs with its defaults, steering on); without one, generation cannot steer."""
    import keras

    from videogen import artifacts, steering
    from videogen.model import build_generator
    from videogen.train import TrainSettings
    from videogen.train.fit import steering_targets

    defaults = TrainSettings()
    context_frames = context_frames or defaults.context_frames
    keras.utils.set_random_seed(0)
    model = build_generator(size, ngf, context_frames, residual=True, norm=defaults.norm, dropout=defaults.dropout)
    rng = np.random.default_rng(0)
    # Non-zero output layer and trained-like BN statistics (an untrained residual model only copies frames).
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 2, c)])
    delta = model.get_layer("delta")
    delta.set_weights([rng.normal(0, 0.02, w.shape).astype(np.float32) for w in delta.get_weights()])
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "generator.keras")
    (path / "model.json").write_text(json.dumps({"image_size": size, "fps": 25.0, "steps": 0, "ngf": ngf,
                                                 "context_frames": context_frames, "residual": True}))
    if steering_from is not None:
        steering.save_targets(steering_targets(artifacts.open_dataset(steering_from), 0), path)
    return path


def make_dataset_dir(path: Path, size: int, num_frames: int = 40) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "frames.npy", frames)
    n_train = int(0.75 * (num_frames - 1))
    (path / "dataset.json").write_text(json.dumps({
        "fps": 25.0, "image_size": size, "num_frames": num_frames, "source": "random", "train": [0, n_train],
        "val": [n_train, num_frames - 1], "start_frame": n_train + 1, "seed": 0}))
    return path


# ----------------------------------------------------------------------------------------------------------------------
# (1) Generation

SEED_WAY_SCRIPT = r"""
import sys, numpy as np, keras
from PIL import Image
model_path, image_path, out_path = sys.argv[1:4]
model = keras.models.load_model(model_path, compile=False)
frame = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
frame = np.concatenate([frame] * (model.input_shape[-1] // 3), axis=-1)
out = model(frame[None], training=True)[0].numpy()
Image.fromarray(np.clip((out + 1.0) * 127.5, 0, 255).round().astype(np.uint8)).save(out_path)
"""


@contextlib.contextmanager
def steering_host_ms():
    """Milliseconds of each ``steering.Controllers.update`` (the host-side measurements after every generated step,
    for all K videos) while the block runs: a list filled in place."""
    from videogen import steering

    update, times = steering.Controllers.update, []

    def timed_update(self, previous, frames):
        started = time.perf_counter()
        update(self, previous, frames)
        times.append(1000 * (time.perf_counter() - started))

    steering.Controllers.update = timed_update
    try:
        yield times
    finally:
        steering.Controllers.update = update


def bench_generation(work: Path, size: int, ngf: int, frames: int, k_frames: int, ks: list[int], repeats: int,
                     seed_runs: int, naive_frames: int) -> dict:
    import keras
    from PIL import Image

    from videogen import generate as gen

    dataset_dir = make_dataset_dir(work / f"data_{size}", size)
    model_dir = make_model_dir(work / f"model_{size}", size, ngf, steering_from=dataset_dir)
    out: dict = {"image_size": size, "ngf": ngf}

    # Ours: generate() end to end (model load, BN fold, rollout, streaming frames.npy) for one rollout, with the
    # defaults: steering on (its host-side measurements timed, see steering_host_ms).
    def run_generate(n, k, name):
        settings = gen.GenerateSettings(frames=n, num_videos=k, seed=0)
        info = gen.generate(model_dir, work / f"gen_{name}", settings, dataset_dir=dataset_dir)
        return info

    per_k = {}
    for k in ks:
        n = frames if k == 1 else k_frames
        infos = []
        run_generate(min(n, 5), k, "warmup")
        with steering_host_ms() as host_ms:
            for _ in range(repeats):
                infos.append(run_generate(n, k, f"k{k}"))
        rates = [i["total_frames_per_s"] for i in infos]
        per_k[k] = {"frames": n, "num_videos": k, "total_frames_per_s": stats(rates),
                    "ms_per_frame": stats([1000.0 / r for r in rates]), "device": infos[0]["device"],
                    "precision": infos[0]["precision"], "jit_compile": infos[0]["jit_compile"],
                    "steer": infos[0]["steering"] is not None, "steering_host_ms_per_step": statistics.median(host_ms or [0.0])}
    out["generate"] = per_k
    # Steering's cost: the same K=1 rollout with steering off.
    infos = [gen.generate(model_dir, work / "gen_plain", gen.GenerateSettings(frames=min(frames, 50), seed=0,
                                                                              steer=False),
                          dataset_dir=dataset_dir) for _ in range(repeats)]
    out["generate_unsteered_k1"] = {"frames": min(frames, 50),
                                    "total_frames_per_s": stats([i["total_frames_per_s"] for i in infos])}
    # The same step in float32 (precision off) for comparison, K=1.
    infos = [gen.generate(model_dir, work / "gen_fp32", gen.GenerateSettings(frames=min(frames, 50), seed=0,
                                                                             precision="float32"),
                          dataset_dir=dataset_dir) for _ in range(repeats)]
    out["generate_float32_k1"] = {"frames": min(frames, 50),
                                  "total_frames_per_s": stats([i["total_frames_per_s"] for i in infos])}

    # (b) The naive loop: model(frame) per frame from Python, one process, model loaded once.
    model = keras.models.load_model(model_dir / "generator.keras", compile=False)
    start = np.load(dataset_dir / "frames.npy")[0]

    k_context = int(model.input_shape[-1]) // 3

    def naive():
        context = np.concatenate([start] * k_context, axis=-1).astype(np.float32)[None] / 127.5 - 1.0
        for _ in range(naive_frames):
            frame = model(context, training=False).numpy()
            context = np.concatenate([context[..., 3:], frame], axis=-1)
        return frame

    naive_times = timed(naive, repeats)
    out["naive_loop"] = {"frames": naive_frames, "frames_per_s": stats([naive_frames / t for t in naive_times])}

    # (a) The original workflow's way: a fresh process per frame that loads the model, predicts one frame and writes a PNG.
    Image.fromarray(start).save(work / "start.png")
    env = tensorflow_default_env(dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    seed_times = []
    for i in range(seed_runs + 1):  # the first is a warm-up (file cache)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", SEED_WAY_SCRIPT, str(model_dir / "generator.keras"),
                        str(work / "start.png"), str(work / f"seed_{i}.png")], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i:
            seed_times.append(time.perf_counter() - t)
    out["seed_way"] = {"frames": seed_runs, "s_per_frame": stats(seed_times)}

    ours = per_k[1]["total_frames_per_s"]["median"]
    out["speedup_vs_seed_way"] = ours * out["seed_way"]["s_per_frame"]["median"]
    out["speedup_vs_naive"] = ours / out["naive_loop"]["frames_per_s"]["median"]
    if max(ks) > 1:
        out[f"k{max(ks)}_vs_k1_total_frames_per_s"] = per_k[max(ks)]["total_frames_per_s"]["median"] / ours
    out["generator_forward_gflop"] = conv_flops(model) / 1e9
    return out


# ----------------------------------------------------------------------------------------------------------------------
# (2) Memory: peak RSS of generating n frames, each in its own process

MEMORY_SCRIPT = r"""
import json, resource, sys, logging
from pathlib import Path
from videogen.generate import GenerateSettings, generate
model_dir, dataset_dir, out_dir, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
generate(Path(model_dir), Path(out_dir), GenerateSettings(frames=frames, chunk_frames=50), dataset_dir=Path(dataset_dir))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_memory(work: Path, size: int, ngf: int, counts: list[int]) -> dict:
    dataset_dir = make_dataset_dir(work / f"mem_data_{size}", size)
    model_dir = make_model_dir(work / f"mem_model_{size}", size, ngf, steering_from=dataset_dir)
    out: dict = {"image_size": size, "ngf": ngf}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    for n in counts:
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(model_dir), str(dataset_dir),
                               str(work / f"mem_{n}"), str(n)], check=True, env=env, capture_output=True, text=True)
        out[f"peak_rss_mb_{n}"] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        out[f"frames_npy_mb_{n}"] = (work / f"mem_{n}" / "frames.npy").stat().st_size / 2**20
    out["ratio"] = out[f"peak_rss_mb_{counts[1]}"] / out[f"peak_rss_mb_{counts[0]}"]
    return out


# ----------------------------------------------------------------------------------------------------------------------
# (3) Training


def reference_train_step(size: int, ngf: int, batch: int):
    """A plain train step in the TensorFlow pix2pix tutorial's style: two GradientTapes in one tf.function, float32,
    on the same networks that ``videogen train`` builds with its default settings (context frames, norm, dropout)."""
    import keras
    import tensorflow as tf

    from videogen.model import build_discriminator, build_generator, discriminator_loss, generator_loss
    from videogen.train import TrainSettings

    d = TrainSettings()
    k = d.context_frames
    generator = build_generator(size, ngf, k, d.residual, norm=d.norm, dropout=d.dropout)
    discriminator = build_discriminator(size, ngf, k)
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)

    @tf.function
    def train_step(input_image, target):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            gen_output = generator(input_image, training=True)
            disc_real_output = discriminator([input_image, target], training=True)
            disc_generated_output = discriminator([input_image, gen_output], training=True)
            gen_total_loss, _, _ = generator_loss(disc_generated_output, gen_output, target, 1.0, 100.0)
            disc_loss = discriminator_loss(disc_real_output, disc_generated_output)
        g_opt.apply_gradients(zip(gen_tape.gradient(gen_total_loss, generator.trainable_variables),
                                  generator.trainable_variables))
        d_opt.apply_gradients(zip(disc_tape.gradient(disc_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        return gen_total_loss, disc_loss

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3 * k)).astype(np.float32))
    y = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))
    return lambda: [t.numpy() for t in train_step(x, y)], generator, discriminator


def reference_images_per_s(size: int, ngf: int, batch: int, repeats: int, env: dict) -> list[float]:
    """Images/s of :func:`reference_train_step`, timed in a process of its own with ``env``."""
    child = subprocess.run([sys.executable, "-m", "bench.run", "--reference-child", f"{size},{ngf},{batch},{repeats}"],
                           env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"), cwd=ROOT, capture_output=True, text=True,
                           check=True)
    return [batch / t for t in json.loads(child.stdout.strip().splitlines()[-1])]


def bench_training(work: Path, size: int, ngf: int, batches: list[int], repeats: int, peak_gflops: float,
                   num_frames: int) -> dict:
    from videogen.hardware import keras_training_policy, resolve_precision
    from videogen.train import TrainSettings, train

    out: dict = {"image_size": size, "ngf": ngf, "ndf": ngf}
    for batch in batches:
        _, generator, discriminator = reference_train_step(size, ngf, batch)
        flops_per_image = train_step_flops(conv_flops(generator), conv_flops(discriminator))
        # The reference step, each in its own process: with oneDNN on (what one environment variable gives any user)
        # and as TensorFlow runs it by default on this CPU (on an AVX2-only CPU without oneDNN kernels, which
        # importing videogen turns on).
        ref = reference_images_per_s(size, ngf, batch, repeats, dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1"))
        ref_default = reference_images_per_s(size, ngf, batch, repeats, tensorflow_default_env(dict(os.environ)))
        # videogen.train.train() end to end; it records its steady-state images/s (warm-up steps left out).
        dataset_dir = make_dataset_dir(work / f"train_data_{size}", size, num_frames=num_frames)
        # The default ("auto": mixed bfloat16 where the CPU has native bf16, else float32) and float32 forced.
        runs: dict[str, list[float]] = {"auto": [], "float32": []}
        resolved = ""
        for r in range(repeats):
            for precision, values in runs.items():  # interleaved, so both see the same machine load
                settings = TrainSettings(max_steps=2 + 3, batch_size=batch, ngf=ngf, ndf=ngf, refine_rounds=0,
                                         checkpoint_every=10_000, log_every=10_000, seed=r, precision=precision)
                info = train(dataset_dir, work / f"train_out_{size}_{batch}_{precision}_{r}", settings)
                values.append(float(info["train_images_per_s"]))
                if precision == "auto":
                    resolved = keras_training_policy(resolve_precision("auto", on_gpu=False, training=True))
        ours, ours_f32 = runs["auto"], runs["float32"]
        entry = {"batch": batch, "train_step_gflop_per_image": flops_per_image / 1e9,
                 "videogen_train_precision": resolved,
                 "videogen_train_images_per_s": stats(ours), "reference_images_per_s": stats(ref),
                 "speedup_vs_reference": statistics.median(ours) / statistics.median(ref),
                 "reference_tf_default_images_per_s": stats(ref_default),
                 "reference_tf_default_onednn": tensorflow_default_env({}).get("TF_ENABLE_ONEDNN_OPTS", "as set"),
                 "speedup_vs_reference_tf_default": statistics.median(ours) / statistics.median(ref_default),
                 "videogen_train_float32_images_per_s": stats(ours_f32),
                 "float32_speedup_vs_reference": statistics.median(ours_f32) / statistics.median(ref)}
        entry["videogen_share_of_fp32_peak"] = statistics.median(ours) * flops_per_image / 1e9 / peak_gflops
        entry["videogen_float32_share_of_fp32_peak"] = (statistics.median(ours_f32) * flops_per_image / 1e9
                                                        / peak_gflops)
        entry["reference_share_of_fp32_peak"] = statistics.median(ref) * flops_per_image / 1e9 / peak_gflops
        out[f"batch_{batch}"] = entry
    return out


# ----------------------------------------------------------------------------------------------------------------------
# (4) Prepare


def bench_prepare(work: Path, size: int, repeats: int, max_frames: int) -> dict:
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, load_dataset, prepare, write_ab_pairs

    clip = real_clip("bikes.mp4")
    settings = PrepareSettings(image_size=size, max_frames=max_frames)
    counter = iter(range(10_000))
    frames_per_run = []

    def run_prepare():
        info = prepare(clip, work / f"prep_{next(counter)}", settings)
        frames_per_run.append(info["num_frames"])

    prep_times = timed(run_prepare, repeats)
    n = frames_per_run[-1]
    frames, _ = load_dataset(work / f"prep_{next(counter) - 1}")
    ab_times = timed(lambda: write_ab_pairs(frames, (0, n - 1), work / f"ab_{next(counter)}"), repeats)
    prep = [n / t for t in prep_times]
    ab = [(n - 1) / t for t in ab_times]
    return {"clip": clip.name, "image_size": size, "frames": n, "prepare_frames_per_s": stats(prep),
            "ab_png_frames_per_s": stats(ab), "speedup": statistics.median(prep) / statistics.median(ab)}


# ----------------------------------------------------------------------------------------------------------------------
# Report


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


KIND_NAMES = {"bf16": "CPU with native bfloat16 (AVX512_BF16/AMX)", "avx512": "AVX-512 CPU without bf16",
              "avx2": "AVX2-only CPU (no AVX-512, no bf16)", "other": "CPU without AVX2"}


def machine_line(m: dict) -> str:
    """Which CPU kind the figures belong to, and how it was had (native, or capped to reproduce an older one)."""
    line = f"**CPU kind: {KIND_NAMES.get(m['cpu_kind'], m['cpu_kind'])}**"
    if m.get("onednn_max_cpu_isa"):
        line += (f", reproduced on {m['cpu']} (flags {', '.join(m.get('cpu_flags', []))}) with "
                 f"ONEDNN_MAX_CPU_ISA={m['onednn_max_cpu_isa'].upper()}"
                 + (f" and OPENBLAS_CORETYPE={m['openblas_coretype']}" if m.get("openblas_coretype") else "")
                 + ": a capped reproduction, not a real AVX2-only CPU (this CPU's cores, caches, memory and clock), "
                 "so read its figures as an upper bound for one")
    elif m.get("cpu_flags"):
        line += f" (flags {', '.join(m['cpu_flags'])})"
    return line + "."


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['device']} ({m['cores']} cores), TensorFlow {m['tensorflow']}, "
             f"by `make bench` (`python -m bench.run{' --quick' if results.get('quick') else ''}"
             f"{' --core' if results.get('core') else ''}"
             f"{' --cpu avx2' if m.get('onednn_max_cpu_isa') == 'avx2' else ''}`). "
             f"Median (min-max) of {results['repeats']} runs after a warm-up; random-weight models.", "",
             machine_line(m), ""]
    peak = results.get("matmul")
    if peak:
        nominal = peak.get("nominal_fp32_peak_gflops")
        lines += [f"fp32 matmul {peak['n']}: numpy {fmt(peak['numpy_sgemm_gflops'], 0)} GFLOP/s, tf.matmul "
                  f"{fmt(peak['tf_matmul_gflops'], 0)} GFLOP/s"
                  + (f", nominal peak {nominal:.0f} GFLOP/s ({m['cores']} cores x {m['cpu_mhz']:.0f} MHz x "
                     f"{FLOPS_PER_CYCLE[m['cpu_kind']]} FLOP/cycle)" if nominal else "")
                  + f"; the shares of peak below are of the largest, {peak.get('peak_gflops', 0):.0f} GFLOP/s "
                  f"(bfloat16 runs can pass 100%: bf16 math is faster than the fp32 peak).", ""]
    lines += ["| what | figure | target |", "| --- | --- | --- |"]
    for g in results.get("generation", []):
        s = g["image_size"]
        k1 = g["generate"]["1"]  # results as JSON: keys are strings
        steer = "steering on" if k1.get("steer") else "steering off: no steering targets"
        lines.append(f"| generate {s} px ngf {g['ngf']}, 1 video ({k1['precision']}, defaults: {steer}) | "
                     f"{fmt(k1['total_frames_per_s'])} frames/s = {k1['ms_per_frame']['median']:.0f} ms/frame | "
                     f"{'<= 190 ms' if s == 256 else ''} |")
        if "generate_unsteered_k1" in g:
            plain = g["generate_unsteered_k1"]["total_frames_per_s"]
            lines.append(f"| generate {s} px, steering off, 1 video | {fmt(plain)} frames/s = "
                         f"{1000 / plain['median']:.0f} ms/frame; steering costs "
                         f"{k1['ms_per_frame']['median'] - 1000 / plain['median']:.0f} ms/frame | |")
        if k1.get("steer"):
            host = k1["steering_host_ms_per_step"]
            lines.append(f"| steering's host-side measurements (flow, sharpness, patch distances), {s} px | "
                         f"{host:.1f} ms per step = {100 * host / k1['ms_per_frame']['median']:.0f}% of the step | "
                         f"<= 10% |")
        lines.append(f"| generate {s} px, float32 step, 1 video | "
                     f"{fmt(g['generate_float32_k1']['total_frames_per_s'])} frames/s | |")
        gflop, peak_gflops = g.get("generator_forward_gflop"), (peak or {}).get("peak_gflops")
        for k, e in g["generate"].items():
            if int(k) > 1:
                share = (f" ({100 * e['total_frames_per_s']['median'] * gflop / peak_gflops:.0f}% of fp32 peak, "
                         f"{e['precision']})" if gflop and peak_gflops else "")
                lines.append(f"| generate {s} px, K={k} videos at once | {fmt(e['total_frames_per_s'])} total frames/s"
                             f" = {e['ms_per_frame']['median']:.0f} ms/frame{share} | "
                             f"{'<= 140 ms (K=8)' if s == 256 and int(k) == 8 else ''} |")
        kmax = [key for key in g if key.endswith("_vs_k1_total_frames_per_s")]
        for key in kmax:
            lines.append(f"| {key.split('_')[0].upper()} vs K=1 total frames/s ({s} px) | {g[key]:.2f}x | >= 2x |")
        lines.append(f"| naive loop `model(frame)` {s} px | {fmt(g['naive_loop']['frames_per_s'])} frames/s; "
                     f"ours {g['speedup_vs_naive']:.2f}x | >= 1.5x |")
        lines.append(f"| original workflow's way (process per frame) {s} px | {fmt(g['seed_way']['s_per_frame'])} s/frame; "
                     f"ours {g['speedup_vs_seed_way']:.1f}x | >= 30x |")
    mem = results.get("memory")
    if mem:
        keys = sorted(int(k.rsplit("_", 1)[1]) for k in mem if k.startswith("peak_rss_mb_"))
        lines.append(f"| peak RSS, generate {keys[0]} vs {keys[1]} frames ({mem['image_size']} px) | "
                     f"{mem[f'peak_rss_mb_{keys[0]}']:.0f} vs {mem[f'peak_rss_mb_{keys[1]}']:.0f} MB "
                     f"({mem['ratio']:.2f}x) | <= 1.2x |")
    for tr in results.get("training") or []:
        for key, e in tr.items():
            if key.startswith("batch_"):
                lines.append(f"| train {tr['image_size']} px batch {e['batch']}: videogen.train (default precision: "
                             f"{e['videogen_train_precision']}) | {fmt(e['videogen_train_images_per_s'])} img/s "
                             f"({100 * e['videogen_share_of_fp32_peak']:.0f}% of fp32 peak); "
                             f"{e['speedup_vs_reference']:.2f}x ref | >= 1.3x ref |")
                lines.append(f"| train {tr['image_size']} px batch {e['batch']}: videogen.train --precision float32 | "
                             f"{fmt(e['videogen_train_float32_images_per_s'])} img/s "
                             f"({100 * e['videogen_float32_share_of_fp32_peak']:.0f}% of fp32 peak); "
                             f"{e['float32_speedup_vs_reference']:.2f}x ref | |")
                if "reference_tf_default_images_per_s" in e:
                    onednn = {"1": "on", "0": "off"}.get(e["reference_tf_default_onednn"], "as set by the user")
                    lines.append(f"| train {tr['image_size']} px batch {e['batch']}: tutorial-style reference as "
                                 f"TensorFlow runs it by default here (oneDNN {onednn}) | "
                                 f"{fmt(e['reference_tf_default_images_per_s'])} img/s; ours "
                                 f"{e['speedup_vs_reference_tf_default']:.2f}x | |")
                lines.append(f"| train {tr['image_size']} px batch {e['batch']}: tutorial-style reference with "
                             f"oneDNN on (own process) | "
                             f"{fmt(e['reference_images_per_s'])} img/s "
                             f"({100 * e['reference_share_of_fp32_peak']:.0f}% of peak); ours "
                             f"{e['speedup_vs_reference']:.2f}x; {e['train_step_gflop_per_image']:.1f} GFLOP/img | |")
    pr = results.get("prepare")
    breakdown = breakdown_lines(results.get("breakdown"))
    lines += breakdown[:1]
    if pr:
        lines.append(f"| prepare {pr['clip']} {pr['image_size']} px ({pr['frames']} frames) | "
                     f"{fmt(pr['prepare_frames_per_s'])} frames/s vs A|B PNGs {fmt(pr['ab_png_frames_per_s'])}: "
                     f"{pr['speedup']:.1f}x | >= 5x |")
    for part, err in results.get("errors", {}).items():
        lines.append(f"| {part} | not measured: {err} | |")
    return "\n".join(lines + breakdown[1:]) + "\n"


def breakdown_lines(b: dict | None) -> list[str]:
    """The train step's time by part (bench.train_breakdown): a row for the table, then the tables (after it)."""
    if not b:
        return []
    from bench.train_breakdown import report

    return [f"| where videogen's train step spends its time ({b['size']} px batch {b['batch']}) | the tables below | |",
            "", f"Where videogen's train step spends its time, {b['size']} px, batch {b['batch']}, ngf/ndf {b['ngf']} "
            "(`python -m bench.train_breakdown`: one step of each kind in turn, in one process; the reference here is "
            "the tutorial-style step with oneDNN on):", "", report(b["result"], b["profile"], b["batch"])]


def bench_breakdown(quick: bool) -> dict:
    """Where videogen's train step spends its time: :mod:`bench.train_breakdown` at 128 px batch 8."""
    from bench import train_breakdown

    size, ngf, batch = (64, 8, 2) if quick else (128, 64, 8)
    result = train_breakdown.measure(size, ngf, batch, "auto", 2 if quick else 8)
    profile = None if quick else train_breakdown.onednn_profile(size, ngf, batch, "auto", 2)
    return {"size": size, "ngf": ngf, "batch": batch, "result": result, "profile": profile}


def update_page(md: str, page: Path, kind: str) -> None:
    """Replace this CPU kind's block (``<!-- bench:<kind>:start -->`` ... ``end``) in ``page``, or append one."""
    text = page.read_text()
    start, end = f"<!-- bench:{kind}:start -->", f"<!-- bench:{kind}:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{md}{end}{tail}"
    else:
        text = text.rstrip() + f"\n\n## CPU: {KIND_NAMES.get(kind, kind)}\n\n{start}\n{md}{end}\n"
    page.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in about a minute")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per figure after a warm-up (default and minimum 3; --quick: 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench",
                        help="where results-<kind>.json/.md go (kind: bf16, avx512 or avx2)")
    parser.add_argument("--cpu", choices=["native", "avx2"], default="native",
                        help="avx2: measure as an AVX2-only CPU (oneDNN and OpenBLAS capped at AVX2) on a newer one")
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true",
                        help="replace this CPU kind's table in docs/performance.md")
    parser.add_argument("--core", action="store_true",
                        help="only what the targets name: generation at 256 px (one video), training at 128 px "
                             "batch 8, the breakdown (memory and prepare: skip them too)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["generation", "memory", "training", "breakdown", "prepare"])
    parser.add_argument("--reference-child", help=argparse.SUPPRESS)  # SIZE,NGF,BATCH,REPEATS: time the reference
    args = parser.parse_args(argv)
    if args.reference_child:
        size, ngf, batch, repeats = (int(v) for v in args.reference_child.split(","))
        sys.path.insert(0, str(ROOT))
        step, _, _ = reference_train_step(size, ngf, batch)
        print(json.dumps(timed(step, repeats, warmup=2)))
        return 0
    if args.cpu == "avx2" and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() != "AVX2":
        # The caps are read when oneDNN and OpenBLAS load: start again with them set.
        env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", OPENBLAS_CORETYPE="Haswell")
        os.execve(sys.executable, [sys.executable, "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])],
                  env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("videogen.generate").setLevel(logging.WARNING)
    logging.getLogger("videogen.train").setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    q = args.quick
    repeats = max(1, args.repeats or 1) if q else max(3, args.repeats or 3)
    results: dict = {"machine": machine_info(), "quick": q, "core": args.core, "repeats": repeats, "errors": {}}
    kind = results["machine"]["cpu_kind"]
    json_path, md_path = args.out / f"results-{kind}.json", args.out / f"results-{kind}.md"
    results["matmul"] = matmul_peak(512 if q else 4096, repeats)
    # The machine's fp32 rate: the fastest of numpy's sgemm, tf.matmul (oneDNN reaches the AVX-512 FMA peak where
    # OpenBLAS does not) and the nominal peak (cores x clock x FLOPs per cycle), so a share of it is a share of what
    # this CPU can do in fp32, never flattered by a low measurement.
    nominal = nominal_fp32_peak(results["machine"])
    results["matmul"]["nominal_fp32_peak_gflops"] = nominal
    peak = max(results["matmul"]["numpy_sgemm_gflops"]["median"], results["matmul"]["tf_matmul_gflops"]["median"],
               nominal or 0.0)
    results["matmul"]["peak_gflops"] = peak
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="videogen-bench-") as tmp:
        work = Path(tmp)
        parts = {
            "generation": lambda: [bench_generation(work, s, n, f, kf, ks, repeats, seed, naive)
                                   for s, n, f, kf, ks, seed, naive in (
                                       [(64, 8, 6, 3, [1, 2], 1, 3)] if q else
                                       [(256, 64, 200, 200, [1], 5, 20)] if args.core else
                                       [(256, 64, 200, 200, [1, 4, 8], 5, 20), (128, 64, 200, 200, [1, 4, 8], 5, 40)])],
            "memory": lambda: bench_memory(work, 64 if q else 128, 8 if q else 64, [20, 200] if q else [200, 2000]),
            "training": lambda: [bench_training(work, size, 8 if q else 64, batches, repeats, peak, 12 if q else 40)
                                 for size, batches in ([(64, [2])] if q else [(128, [8])] if args.core else
                                                       [(128, [8]), (256, [1, 16])])],
            "breakdown": lambda: bench_breakdown(q),
            "prepare": lambda: bench_prepare(work, 64 if q else 256, repeats, 10 if q else 0),
        }
        for name, fn in parts.items():
            if name in args.skip:
                continue
            log.info("bench: %s", name)
            t = time.perf_counter()
            try:
                results[name] = fn()
            except Exception as err:  # one part failing must not lose the others' figures
                log.exception("bench part %s failed", name)
                results["errors"][name] = f"{type(err).__name__}: {err}"
            log.info("bench: %s took %.0f s", name, time.perf_counter() - t)
            # Partial results after each part, so a long run that is stopped keeps what it measured.
            json_path.write_text(json.dumps(results, indent=2, default=str))
    json_path.write_text(json.dumps(results, indent=2, default=str))
    md = markdown(json.loads(json.dumps(results)))
    md_path.write_text(md)
    print(md)
    if args.update_docs:
        update_page(md, ROOT / "docs" / "performance.md", kind)
    return 1 if results["errors"] and q else 0


if __name__ == "__main__":
    sys.exit(main())
