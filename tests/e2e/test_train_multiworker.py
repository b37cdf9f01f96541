"""Training across nodes, for real on one machine: TrainJob node processes (``python -m videogen.trainjob``, the
command each node of the TrainJob runs) on 127.0.0.1, training with MultiWorkerMirroredStrategy.

Each worker gets what a node gets from the TrainJob (the work as JSON) plus a ``TF_CONFIG`` naming 127.0.0.1 ports
instead of JobSet's pod hostnames (tests/unit/test_trainjob.py checks those). The dataset, the checkpoint dir and the
model location are local directories here (object storage on a cluster; the same videogen.storage calls). Tiny model
(64 px, ngf = ndf = 8), a few steps; float32 and no dropout, so runs can be compared number for number.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_train import load_generator, write_dataset
from videogen.trainjob import WORK_ENV

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TINY = {"batch_size": 4, "ngf": 8, "ndf": 8, "log_every": 1, "dropout": 0.0, "precision": "float32",
        "refine_rounds": 0}

# The reference: one process at the same global batch, its two replicas on two logical CPU devices (batch norm
# statistics are per replica, so one device at batch 4 would legitimately differ from 2 x 2).
REFERENCE = r"""
import json, sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from videogen.train import TrainSettings, train
train(Path(sys.argv[1]), Path(sys.argv[2]), TrainSettings(devices="cpu:2", **json.loads(sys.argv[3])))
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(tmp_path: Path, dataset: Path, settings: dict, tag: str) -> list[subprocess.Popen]:
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    work = {"dataset": str(dataset), "model": str(tmp_path / "model"), "checkpoint_dir": str(tmp_path / "ckpt"),
            "settings": settings}
    workers = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), WORK_ENV: json.dumps(work), "VIDEOGEN_PROGRESS": "log",
               "TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        log = open(tmp_path / f"{tag}-worker{index}.log", "w")  # noqa: SIM115 (closed with the process)
        workers.append(subprocess.Popen([sys.executable, "-m", "videogen.trainjob"], cwd=REPO, env=env,
                                        stdout=log, stderr=subprocess.STDOUT))
    return workers


def _wait(processes: list[subprocess.Popen], tmp_path: Path, tag: str, timeout: float = 240) -> None:
    for index, process in enumerate(processes):
        process.wait(timeout=timeout)
        log = (tmp_path / f"{tag}-worker{index}.log").read_text()
        assert process.returncode == 0, log[-4000:]


def test_two_worker_processes_end_with_the_weights_of_one_process_at_the_same_global_batch(tmp_path):
    """Two node processes (MultiWorkerMirroredStrategy, one replica each, global batch 4) train 3 steps and the
    chief's exported generator has the weights of one process training 3 steps at global batch 4 over 2 replicas,
    within float tolerance: each worker takes its own half of the same global batches, the losses are means over
    the global batch, and the gradients are summed across the workers. The non-chief leaves no model behind."""
    dataset = write_dataset(tmp_path / "dataset")
    settings = {**TINY, "max_steps": 3, "checkpoint_every": 3}
    reference = subprocess.Popen([sys.executable, "-c", REFERENCE, str(dataset), str(tmp_path / "reference"),
                                  json.dumps(settings)], cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = _start_workers(tmp_path, dataset, settings, "run")
    _wait(workers, tmp_path, "run")
    out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, out[-4000:]

    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["distribution"] == "MultiWorkerMirroredStrategy" and info["workers"] == 2
    assert info["replicas"] == 2 and info["steps"] == 3 and info["batch_size"] == 4
    expected = json.loads((tmp_path / "reference" / "model.json").read_text())
    assert expected["replicas"] == 2 and expected["distribution"] == "MirroredStrategy"
    for got, want in zip(info["history"]["points"], expected["history"]["points"], strict=True):
        np.testing.assert_allclose([got[k] for k in ("gen_total", "disc")], [want[k] for k in ("gen_total", "disc")],
                                   rtol=1e-4, atol=1e-5)
    got = load_generator(tmp_path / "model" / "generator.keras").get_weights()
    want = load_generator(tmp_path / "reference" / "generator.keras").get_weights()
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index", "history.json"]


def _wait_for_checkpoint(ckpt: Path, processes: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (ckpt / "checkpoint").exists():
        assert time.monotonic() < deadline, "no checkpoint appeared"
        assert all(p.poll() is None for p in processes), "a worker exited before the first checkpoint"
        time.sleep(0.05)


def test_a_killed_worker_resumes_from_the_shared_checkpoint(tmp_path):
    """SIGKILL one worker after the first checkpoint reached the shared checkpoint dir, stop the other (a JobSet
    restarts every node when one fails), start both again: they resume from the shared checkpoint (not step 0),
    finish the budget, and the loss history runs on without a gap."""
    dataset = write_dataset(tmp_path / "dataset")
    settings = {**TINY, "max_steps": 12, "checkpoint_every": 2}
    workers = _start_workers(tmp_path, dataset, settings, "first")
    try:
        _wait_for_checkpoint(tmp_path / "ckpt", workers)
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(timeout=60)
    finally:
        workers[0].kill()
        workers[0].wait(timeout=60)
    assert workers[1].returncode == -signal.SIGKILL, "the worker had finished before it was killed"
    assert not (tmp_path / "model" / "model.json").exists()

    resumed = _start_workers(tmp_path, dataset, settings, "second")
    _wait(resumed, tmp_path, "second")
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["steps"] == 12 and info["workers"] == 2
    assert info["resumed_from_step"] and 2 <= info["resumed_from_step"] < 12
    for index in range(2):
        assert f"resumed from step {info['resumed_from_step']} of 12" in (
            tmp_path / f"second-worker{index}.log").read_text()
    assert [p["step"] for p in info["history"]["points"]] == list(range(1, 13))


def test_a_worker_with_a_missing_dataset_fails_with_one_line(tmp_path):
    """A node whose dataset is not there exits non-zero with one `videogen: error:` line last (what the train step
    shows when the TrainJob fails: the container's termination message is its log tail)."""
    work = {"dataset": str(tmp_path / "no-dataset"), "model": str(tmp_path / "model"),
            "checkpoint_dir": str(tmp_path / "ckpt"), "settings": {**TINY, "max_steps": 1}}
    env = {**os.environ, "PYTHONPATH": str(REPO), WORK_ENV: json.dumps(work), "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_CONFIG": json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})}
    run = subprocess.run([sys.executable, "-m", "videogen.trainjob"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("videogen: error:") and "Traceback" not in run.stderr, run.stderr[-3000:]
