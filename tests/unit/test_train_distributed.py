"""Data-parallel training (issue 4) under tf.distribute.MirroredStrategy, on 2 logical CPU devices.

The logical devices must be configured before TensorFlow initializes, so the work runs in a fresh ``python -c``
subprocess. Not tested here (no machine with several GPUs and TensorFlow in this project): NCCL all-reduce across real
GPUs and ``jit_compile=true`` under the strategy; the strategy code path itself is the same for CPU and GPU devices.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_train import write_dataset
from videogen.errors import InputError
from videogen.hardware import parse_devices as _parse_devices
from videogen.train import TrainSettings, validate_settings

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration(),
                                                 tf.config.LogicalDeviceConfiguration()])
import keras

from videogen.model import build_discriminator, build_generator
from videogen.train import TrainSettings, make_distributed_train_step, make_train_step, train

dataset, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {}

# 1. A whole run over the 2 CPU devices, then a resume of its checkpoint on one device (no strategy).
tiny = dict(batch_size=4, ngf=8, ndf=8, log_every=1, checkpoint_every=4, refine_rounds=0)
info = train(dataset, out, TrainSettings(max_steps=4, devices="cpu:2", **tiny))
result["distributed"] = {key: info[key] for key in ("steps", "replicas", "devices", "batch_size", "distribution")}
result["distributed"]["points"] = info["history"]["points"]
info = train(dataset, out, TrainSettings(max_steps=5, devices="single", **tiny))
result["resumed"] = {key: info[key] for key in ("steps", "replicas", "resumed_from_step")}
result["resumed"]["points"] = info["history"]["points"]
# A short run through the model's own rollouts (unroll_steps=2) over the 2 CPU devices.
info = train(dataset, out.with_name("unrolled"), TrainSettings(max_steps=2, devices="cpu:2", unroll_steps=2, **tiny))
result["unrolled"] = {"steps": info["steps"], "replicas": info["replicas"],
                      "gen_l1": [p["gen_l1"] for p in info["history"]["points"]]}

# 2. One step on a global batch of 4 over 2 replicas against single-device steps on its two halves, from the same
# weights: batch norm (the discriminator's, and the generator's with norm=batch) uses each replica's statistics, so the
# distributed losses must be the mean of the two half-batch losses and the distributed update the mean of the two
# half-batch updates. SGD, so that the weight change is the gradient itself (Adam's first step is about lr * sign(g)
# and would hide a wrong loss scale); dropout off so that both runs compute the same.
rng = np.random.default_rng(0)
inputs = rng.integers(0, 256, (4, 64, 64, 6), dtype=np.uint8)
target = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
common = dict(gan_weight=1.0, l1_weight=100.0, input_noise=0.0)


def build():
    keras.utils.set_random_seed(0)
    generator = build_generator(64, 8, 2, True, norm="batch", dropout=0.0)
    discriminator = build_discriminator(64, 8, 2)
    g_opt, d_opt = keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5)
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    return generator, discriminator, g_opt, d_opt, tf.Variable(0, dtype=tf.int64, trainable=False)


def trainable(*models):
    return np.concatenate([v.numpy().ravel() for m in models for v in m.trainable_weights])


generator, discriminator, g_opt, d_opt, step = build()
initial = [generator.get_weights(), discriminator.get_weights()]
start = trainable(generator, discriminator)
single = make_train_step(generator, discriminator, g_opt, d_opt, step, batch_size=2, image_size=64, context_frames=2,
                         **common)
half_losses, half_updates = [], []
for half in (slice(0, 2), slice(2, 4)):
    generator.set_weights(initial[0])
    discriminator.set_weights(initial[1])
    half_losses.append([float(v) for v in single(inputs[half], target[half])])
    half_updates.append(trainable(generator, discriminator) - start)

strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
with strategy.scope():
    generator, discriminator, g_opt, d_opt, step = build()
    generator.set_weights(initial[0])
    discriminator.set_weights(initial[1])
distributed = make_distributed_train_step(strategy, generator, discriminator, g_opt, d_opt, step,
                                          global_batch_size=4, **common)
batches = tf.data.Dataset.from_tensor_slices((inputs, target)).batch(4, drop_remainder=True)
dist_inputs, dist_target = next(iter(strategy.experimental_distribute_dataset(batches)))
result["per_replica_batches"] = [int(t.shape[0]) for t in strategy.experimental_local_results(dist_inputs)]
result["dist_losses"] = [float(v) for v in distributed(dist_inputs, dist_target)]
result["mean_half_losses"] = np.mean(half_losses, axis=0).tolist()
dist_update = trainable(generator, discriminator) - start
expected = np.mean(half_updates, axis=0)
result["update_error"] = float(np.linalg.norm(dist_update - expected) / np.linalg.norm(expected))
result["update_norm"] = float(np.linalg.norm(expected))
result["step_counter"] = int(step.numpy())
print("RESULT " + json.dumps(result))
"""


def test_devices_setting_is_validated_without_tensorflow():
    """The spellings parse without TensorFlow; a bad one is a one-line InputError."""
    assert _parse_devices("auto") == ("auto", None)
    assert _parse_devices("single") == ("single", None)
    assert _parse_devices("cpu:2") == ("count", ("CPU", 2))
    assert _parse_devices("GPU") == ("count", ("GPU", None))
    assert _parse_devices("/gpu:0, /gpu:1") == ("names", ["/gpu:0", "/gpu:1"])
    assert _parse_devices(["/cpu:0", "/cpu:1"]) == ("names", ["/cpu:0", "/cpu:1"])
    for bad in ("cpu:0", "many", "", []):
        with pytest.raises(InputError, match="devices") as error:
            validate_settings(TrainSettings(max_steps=1, devices=bad))
        assert "\n" not in str(error.value)


def test_mirrored_training_on_two_cpu_devices_matches_one_device(tmp_path):
    """A 4-step run with devices=cpu:2 (2 replicas, global batch 4) finishes with finite losses and records its
    replicas; its checkpoint resumes on one device; a 2-step run through the model's own rollouts (unroll_steps=2)
    runs over the 2 devices too; and one distributed step gives the losses and the weight update of
    the global-batch mean: the means of single-device steps on its two halves (batch norm statistics are per replica),
    so a wrong loss scale (a sum over replicas, or a mean over the per-replica batch) would show."""
    dataset = write_dataset(tmp_path / "dataset")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(dataset), str(tmp_path / "model")], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])

    dist = result["distributed"]
    assert dist["steps"] == 4 and dist["replicas"] == 2 and dist["batch_size"] == 4
    assert dist["distribution"] == "MirroredStrategy" and len(dist["devices"]) == 2
    assert [p["step"] for p in dist["points"]] == [1, 2, 3, 4]
    assert all(np.isfinite(p[k]) for p in dist["points"] for k in ("gen_total", "gen_gan", "gen_l1", "disc"))
    unrolled = result["unrolled"]
    assert unrolled["steps"] == 2 and unrolled["replicas"] == 2 and np.isfinite(unrolled["gen_l1"]).all()
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["replicas"] == 1 and saved["steps"] == 5  # the resumed single-device run wrote it last
    resumed = result["resumed"]
    assert resumed["replicas"] == 1 and resumed["resumed_from_step"] == 4 and resumed["steps"] == 5
    assert [p["step"] for p in resumed["points"]] == [1, 2, 3, 4, 5]
    assert (tmp_path / "model" / "generator.keras").exists()

    assert result["per_replica_batches"] == [2, 2] and result["step_counter"] == 1
    np.testing.assert_allclose(result["dist_losses"], result["mean_half_losses"], rtol=1e-4, atol=1e-5)
    assert result["update_norm"] > 0 and result["update_error"] < 1e-3, result
