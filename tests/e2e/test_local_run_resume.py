"""Preemption of a local run: `videogen run` killed (SIGKILL to its whole process group: kfp.local runs each
task as a child process) during training and started again with the same command resumes training from the last
complete checkpoint under the work dir, finishes the video, and removes the checkpoints once done."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.media import moving_square_frames, write_video

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _command(video: Path, work: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "run", "--video", str(video), "--frames", "6", "--max-steps", "60",
            "--checkpoint-every", "5", "--image-size", "64", "--ngf", "8", "--ndf", "8", "--batch-size", "4",
            "--work-dir", str(work), "--output", str(output)]


def test_killed_videogen_run_started_again_resumes_training_and_cleans_up(tmp_path):
    video = write_video(tmp_path / "in.mp4", moving_square_frames(30, 64))
    work, output = tmp_path / "work", tmp_path / "out" / "gen.mp4"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(_command(video, work, output), cwd=REPO, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        states = []
        while not states and first.poll() is None and time.monotonic() < deadline:
            states = list(work.glob("checkpoints/local-*/train/checkpoint"))
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert states, (tmp_path / "first.log").read_text()[-3000:]
    assert not output.exists()

    second = subprocess.run(_command(video, work, output), cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    text = second.stdout + second.stderr
    assert second.returncode == 0, text[-3000:]
    assert "resumed from step" in text, text[-3000:]
    assert output.is_file() and output.stat().st_size > 0
    assert not list(work.glob("checkpoints/local-*")), "finished runs leave no checkpoints behind"
