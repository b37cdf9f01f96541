"""Preemption: a training process killed with SIGKILL right after its first checkpoint, then started again
with the same arguments, resumes from its last complete checkpoint and ends with exactly the requested steps."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.media import moving_square_frames

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TOTAL_STEPS = 120
CHECKPOINT_EVERY = 10

# The CLI is written elsewhere; this small script is the same call a component or `videogen train` makes.
SCRIPT = f"""
import logging, sys
from pathlib import Path
from videogen.train import TrainSettings, train
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
train(Path(sys.argv[1]), Path(sys.argv[2]), TrainSettings(max_steps={TOTAL_STEPS}, checkpoint_every={CHECKPOINT_EVERY}, batch_size=4,
      ngf=8, ndf=8, log_every=10, refine_rounds=1, refine_fraction=0.2, rollout_starts=4))
"""


def _start(dataset_dir, model_dir, log_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(dataset_dir), str(model_dir)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT), log


def test_train_killed_after_first_checkpoint_resumes_to_the_requested_total(tmp_path):
    """SIGKILL as soon as the `checkpoint` state file appears; the restarted run logs `resumed from step N` with N the
    last complete checkpoint, finishes at exactly TOTAL_STEPS (model.json) and its generator.keras loads."""
    dataset_dir = tmp_path / "dataset"
    dataset_dir.mkdir()
    frames = moving_square_frames(40, 64)
    np.save(dataset_dir / "frames.npy", frames)
    (dataset_dir / "dataset.json").write_text(json.dumps({"fps": 25.0, "image_size": 64, "num_frames": 40,
                                                          "train": [0, 32], "val": [33, 39], "start_frame": 35}))
    model_dir = tmp_path / "model"
    state_file = model_dir / "checkpoints" / "checkpoint"

    first, first_log = _start(dataset_dir, model_dir, tmp_path / "first.log")
    deadline = time.monotonic() + 120
    while not state_file.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    first_log.close()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    assert not (model_dir / "model.json").exists()
    saved = re.search(r"model_checkpoint_path: \"ckpt-(\d+)\"", state_file.read_text())
    killed_at = int(saved.group(1))
    assert 0 < killed_at < TOTAL_STEPS and killed_at % CHECKPOINT_EVERY == 0

    second, second_log = _start(dataset_dir, model_dir, tmp_path / "second.log")
    second.wait(timeout=300)
    second_log.close()
    log = (tmp_path / "second.log").read_text()
    assert second.returncode == 0, log[-3000:]
    assert f"resumed from step {killed_at}" in log
    info = json.loads((model_dir / "model.json").read_text())
    assert info["steps"] == TOTAL_STEPS and info["resumed_from_step"] == killed_at
    steps = [p["step"] for p in info["history"]["points"]]
    assert steps == list(range(CHECKPOINT_EVERY, TOTAL_STEPS + 1, CHECKPOINT_EVERY))

    import keras

    generator = keras.models.load_model(model_dir / "generator.keras", compile=False)
    channels = 3 * info["context_frames"]
    assert generator(np.zeros((1, 64, 64, channels), np.float32)).shape == (1, 64, 64, 3)
