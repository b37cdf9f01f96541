"""TensorBoard: training writes tf.summary events (losses, images/s, the sample strip) that TensorBoard's own reader
and server read; `videogen tensorboard` finds the logs of a local or S3 model dir and runs TensorBoard on them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.test_train import TINY, write_dataset
from videogen import cli, storage
from videogen.errors import InputError
from videogen.train import monitor

SCALARS = {"loss/gen_total", "loss/gen_gan", "loss/gen_l1", "loss/disc", "images_per_s"}
IMAGE = "input_prediction_target"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model dir from 2 real training steps (a log line and a checkpoint with its sample at each)."""
    from videogen.train import TrainSettings, train

    root = tmp_path_factory.mktemp("tb")
    train(write_dataset(root / "data"), root / "model", TrainSettings(max_steps=2, checkpoint_every=1, **TINY))
    return root / "model"


def _accumulator(logdir: Path):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    return acc.Reload()


def test_training_writes_scalars_and_the_sample_image_that_tensorboard_reads(model_dir):
    """TensorBoard's EventAccumulator finds every loss, images/s and the sample strip, each with its plugin and
    description; the strip is a PNG of input | prediction | target; the raw events read back with TensorFlow too."""
    import tensorflow as tf
    from tensorboard.util import tensor_util

    acc = _accumulator(model_dir / "logs")
    assert set(acc.Tags()["tensors"]) == SCALARS | {IMAGE}
    for tag in SCALARS:
        metadata = acc.SummaryMetadata(tag)
        assert metadata.plugin_data.plugin_name == "scalars" and metadata.summary_description
        events = acc.Tensors(tag)
        assert [e.step for e in events] == [1, 2]
        assert all(np.isfinite(tensor_util.make_ndarray(e.tensor_proto)) for e in events)
    metadata = acc.SummaryMetadata(IMAGE)
    assert metadata.plugin_data.plugin_name == "images" and "predicted" in metadata.summary_description
    images = acc.Tensors(IMAGE)
    assert [e.step for e in images] == [1, 2]
    width, height, png = tensor_util.make_ndarray(images[-1].tensor_proto)
    assert (int(width), int(height)) == (3 * 64, 64)
    assert Image.open(io.BytesIO(png)).size == (3 * 64, 64)
    tags = {value.tag for path in (model_dir / "logs").glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value}
    assert tags == SCALARS | {IMAGE}


def test_the_logdir_of_a_local_model_dir_is_its_logs_folder(model_dir, tmp_path):
    """A model dir serves its logs/; a folder of runs (or a logs dir itself) serves itself; no events: a user error."""
    assert monitor.tensorboard_logdir(str(model_dir), tmp_path) == model_dir / "logs"
    assert monitor.tensorboard_logdir(str(model_dir.parent), tmp_path) == model_dir.parent
    assert monitor.tensorboard_logdir(str(model_dir / "logs"), tmp_path) == model_dir / "logs"
    with pytest.raises(InputError, match="no TensorBoard event files under"):
        monitor.tensorboard_logdir(str(tmp_path / "empty"), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing copied for a local dir


def test_the_logdir_of_an_s3_model_is_a_local_copy_of_its_event_files(model_dir, tmp_path, monkeypatch, s3_server,
                                                                      s3_bucket):
    """s3:// and minio:// URIs: only the event files are downloaded (not the generator or checkpoints)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{s3_bucket}/runs/1/model"
    storage.upload_dir(model_dir, uri)
    events = sorted(p.relative_to(model_dir).as_posix() for p in (model_dir / "logs").iterdir())
    for scheme in ("s3", "minio"):
        scratch = tmp_path / scheme
        logdir = monitor.tensorboard_logdir(uri.replace("s3://", f"{scheme}://"), scratch)
        assert logdir == scratch / "logs"
        assert sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file()) == events
    assert set(_accumulator(tmp_path / "s3" / "logs").Tags()["tensors"]) == SCALARS | {IMAGE}
    with pytest.raises(InputError, match="no TensorBoard event files"):
        monitor.tensorboard_logdir(f"s3://{s3_bucket}/runs/2/model", tmp_path / "none")


def test_the_command_runs_this_interpreters_tensorboard_on_the_logdir(model_dir, monkeypatch, s3_server, s3_bucket):
    """`videogen tensorboard --model URI` runs `python -m tensorboard.main --logdir LOCAL_COPY --host --port` while
    the copy exists, and removes it afterwards; host and port default to 127.0.0.1:6006."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{s3_bucket}/model"
    storage.upload_dir(model_dir / "logs", f"{uri}/logs")
    calls = []

    def call(argv):
        logdir = Path(argv[argv.index("--logdir") + 1])
        calls.append((argv, sorted(p.name for p in logdir.iterdir())))
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    assert cli.main(["tensorboard", "--model", uri]) == 0
    assert cli.main(["tensorboard", "--model", str(model_dir), "--port", "7007", "--host", "0.0.0.0"]) == 0
    (remote_argv, remote_files), (local_argv, local_files) = calls
    logdir = Path(remote_argv[remote_argv.index("--logdir") + 1])
    assert remote_argv == [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                           "--port", "6006"]
    assert remote_files == local_files == sorted(p.name for p in (model_dir / "logs").iterdir())
    assert not logdir.exists()  # the downloaded copy is gone with the command
    assert local_argv == monitor.tensorboard_argv(model_dir / "logs", "0.0.0.0", 7007)
    assert local_argv[-4:] == ["--host", "0.0.0.0", "--port", "7007"]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_serves_the_runs_scalars_and_images(model_dir):
    """The real command line, briefly, on 127.0.0.1 and a free port: TensorBoard lists our tags, then is stopped."""
    argv = monitor.tensorboard_argv(monitor.tensorboard_logdir(str(model_dir), model_dir), "127.0.0.1", 0)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            url = next((ln.split(" at ", 1)[1].split()[0] for ln in list(lines) if " at http://127.0.0.1:" in ln),
                       None)
            time.sleep(0.2)
        assert url, f"TensorBoard did not start: {''.join(lines)[-2000:]}"
        scalars = images = {}
        while time.monotonic() < deadline and not (scalars and images):
            scalars, images = (_get_json(f"{url}data/plugin/{p}/tags") for p in ("scalars", "images"))
            time.sleep(0.5)
        assert set(scalars["."]) == SCALARS and set(images["."]) == {IMAGE}
    finally:
        process.terminate()
        process.wait(timeout=30)
