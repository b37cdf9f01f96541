"""The shared pieces the stages hand frames through: artifact files, context stacking, the structured verdict."""
import json

import numpy as np
import pytest

from tests.media import moving_square_frames
from videogen import artifacts, frames
from videogen.errors import InputError


def test_stream_writer_writes_what_numpy_reads_and_resumes_a_partial_file(tmp_path):
    """Frames streamed in two runs (the second continuing after 3 of 5) load with np.load as the full array, and a
    partial file's complete frames can be read back by offset."""
    data = moving_square_frames(5, 16)[:, None]  # (T, V=1, S, S, 3)
    path = tmp_path / artifacts.FRAMES_FILE
    flushed = []
    writer = artifacts.StreamWriter(path, data.shape, 0, 2, flushed.append)
    for frame in data[:3]:
        writer.put(frame)
    writer.close()
    assert flushed == [2, 3] and artifacts.frames_written(path, data.shape) == 3
    assert np.array_equal(np.stack(artifacts.read_frames_at(path, data.shape, 1, 3)), data[1:3])
    writer = artifacts.StreamWriter(path, data.shape, 3, 2, flushed.append)
    for frame in data[3:]:
        writer.put(frame)
    writer.close()
    assert np.array_equal(np.load(path), data)
    assert path.read_bytes()[:len(artifacts.npy_header(data.shape))] == artifacts.npy_header(data.shape)


def test_open_dataset_checks_blocks_and_names_the_missing_file(tmp_path):
    """One reader for every stage: it names the missing file and checks the train/val blocks against the frames."""
    with pytest.raises(InputError, match="frames.npy is missing"):
        tmp_path.joinpath("d").mkdir()
        artifacts.open_dataset(tmp_path / "d")
    np.save(tmp_path / "d" / artifacts.FRAMES_FILE, moving_square_frames(6, 16))
    info = {"image_size": 16, "num_frames": 6, "fps": 25.0, "train": [0, 4], "val": [4, 9]}
    artifacts.atomic_write_json(tmp_path / "d" / artifacts.DATASET_FILE, info)
    dataset = artifacts.open_dataset(tmp_path / "d")
    assert dataset.block("train") == (0, 4) and dataset.image_size == 16 and dataset.fps == 25.0
    with pytest.raises(InputError, match="'val' pairs \\[4, 9\\) do not fit 6 frames"):
        dataset.block("val")
    assert json.loads((tmp_path / "d" / artifacts.DATASET_FILE).read_text()) == info


def test_context_stacking_is_oldest_first_on_channels_and_clamped_at_the_block_start():
    clip = moving_square_frames(4, 8)
    stacked = frames.stack_context(clip[[1, 2]])
    assert stacked.shape == (8, 8, 6)
    assert np.array_equal(stacked[..., :3], clip[1]) and np.array_equal(stacked[..., 3:], clip[2])
    assert [np.array_equal(a, b) for a, b in zip(frames.unstack_context(stacked, 2), clip[[1, 2]])] == [True, True]
    assert np.array_equal(frames.stack_context(clip[None, [1, 2]])[0], stacked)  # a batch of contexts
    assert frames.context_indices(5, 0, 3) == [3, 4, 5] and frames.context_indices(1, 1, 3) == [1, 1, 1]


def test_report_colours_the_verdict_from_the_structured_fields_not_the_prose():
    """metrics.json's "assessment" decides green or red; the prose is only shown."""
    from videogen import evaluate as ev
    from videogen import report

    one_step = {"pairs": 1, "first_pair": 0, "last_pair": 0, "psnr_model": 30.0, "psnr_copy": 29.0,
                "ssim_model": 0.9, "ssim_copy": 0.9, "psnr_gain": 1.0}
    assessment = ev.assess(one_step, [], None)
    assert assessment["beats_copy"] and assessment["good"] and assessment["one_step_gain_db"] == 1.0
    assert "beats copying" in assessment["text"] and assessment["healthy"] is None
    metrics = {"one_step": one_step, "rollout": [], "health": None, "verdict": "some other words",
               "assessment": assessment, "dataset": {}, "settings": {}}
    page = report.render_html(metrics, {}, {}, None, [], [], None)
    assert 'class="verdict good"' in page
    metrics["assessment"] = {**assessment, "good": False}
    metrics["verdict"] = "The model beats copying"
    assert 'class="verdict bad"' in report.render_html(metrics, {}, {}, None, [], [], None)
