"""A full kfp.local pipeline run reading its video from, and writing its result to, a real S3-compatible server
(moto on 127.0.0.1) through the real minio client; the secret never reaches the logs."""

import os
import subprocess
import sys

import pytest

from tests.media import ffprobe_stream

pytestmark = pytest.mark.e2e


def test_videogen_run_reads_s3_input_and_writes_s3_output(tmp_path, s3_server, synthetic_video):
    """`videogen run --video s3://videos/in.mp4 --output s3://videos/out.mp4 --s3-endpoint ...` works end to end:
    the output object is a playable mp4 with the requested frames, and the run's whole log (every task's output)
    never contains the secret key."""
    s3_server.make_bucket("videos")
    s3_server.minio().fput_object("videos", "in.mp4", str(synthetic_video))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
                "AWS_REGION": s3_server.region})
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--video", "s3://videos/in.mp4",
                           "--output", "s3://videos/out.mp4", "--s3-endpoint", s3_server.endpoint,
                           "--frames", "10", "--max-steps", "4", "--batch-size", "4", "--image-size", "64",
                           "--ngf", "8", "--ndf", "8", "--work-dir", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert s3_server.secret_key not in proc.stdout + proc.stderr
    out = tmp_path / "out.mp4"
    s3_server.minio().fget_object("videos", "out.mp4", str(out))
    stream = ffprobe_stream(out)
    assert stream["codec_name"] == "h264" and stream["width"] == 64 and int(stream["nb_read_frames"]) == 10


def test_missing_s3_key_fails_at_once_with_one_line(tmp_path, s3_server):
    """An s3:// video that does not exist: exit 2, one line naming the URI, no secret, nothing written."""
    s3_server.make_bucket("empty-videos")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3_server.env())
    proc = subprocess.run([sys.executable, "-m", "videogen", "prepare", "--video", "s3://empty-videos/nope.mp4",
                           "--output", str(tmp_path / "ds"), "--image-size", "64"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "s3://empty-videos/nope.mp4" in lines[0], proc.stderr
    assert s3_server.secret_key not in proc.stderr
    assert not (tmp_path / "ds").exists()
