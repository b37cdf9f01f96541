"""Generate stage: exact frame counts from one model load, dropout/determinism, K videos, resume, start image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.media import ffprobe_stream
from videogen import generate as gen
from videogen.errors import InputError

SIZE = 64


def _save_model(model_dir: Path, context_frames: int = 1, residual: bool = False, seed: int = 0) -> Path:
    import keras

    from videogen.model import build_generator

    keras.utils.set_random_seed(seed)
    model = build_generator(SIZE, 8, context_frames, residual)
    # Trained-like BN statistics, so the BN fold is exercised with non-trivial numbers.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 2.0, c)])
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / "generator.keras")
    (model_dir / "model.json").write_text(json.dumps({"image_size": SIZE, "fps": 12.0, "steps": 0,
                                                      "context_frames": context_frames, "residual": residual}))
    return model_dir


def _save_dataset(dataset_dir: Path, num_frames: int = 20) -> Path:
    from tests.media import moving_square_frames

    dataset_dir.mkdir(parents=True, exist_ok=True)
    np.save(dataset_dir / "frames.npy", moving_square_frames(num_frames, SIZE))
    (dataset_dir / "dataset.json").write_text(json.dumps({
        "fps": 25.0, "image_size": SIZE, "num_frames": num_frames, "source": "synthetic", "train": [0, 15],
        "val": [15, num_frames - 1], "start_frame": 16, "seed": 0}))
    return dataset_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _save_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return _save_dataset(tmp_path_factory.mktemp("dataset"))


def _settings(**kw) -> gen.GenerateSettings:
    kw.setdefault("frames", 7)
    kw.setdefault("precision", "float32")
    kw.setdefault("chunk_frames", 3)
    return gen.GenerateSettings(**kw)


def test_generate_writes_exactly_n_frames_from_one_model_load(model_dir, dataset_dir, tmp_path, monkeypatch):
    import keras

    calls = []
    real_load = keras.models.load_model
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    info = gen.generate(model_dir, tmp_path / "out", _settings(frames=7, num_videos=2), dataset_dir=dataset_dir)
    frames = np.load(tmp_path / "out" / "frames.npy", mmap_mode="r")
    assert frames.shape == (7, 2, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert len(calls) == 1
    saved = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert saved == json.loads(json.dumps(info))
    assert saved["frames"] == 7 and saved["num_videos"] == 2 and saved["image_size"] == SIZE
    assert saved["fps"] == 12.0 and saved["start_frames"][0] == 16 and len(saved["start_frames"]) == 2
    assert saved["device"].startswith(("CPU", "GPU")) and saved["frames_per_s"] > 0


def test_deterministic_mode_repeats_and_dropout_mode_varies(model_dir, dataset_dir, tmp_path):
    def run(name, **kw):
        gen.generate(model_dir, tmp_path / name, _settings(**kw), dataset_dir=dataset_dir)
        return np.load(tmp_path / name / "frames.npy")

    det_a, det_b = run("det_a", deterministic=True), run("det_b", deterministic=True)
    np.testing.assert_array_equal(det_a, det_b)
    drop_0, drop_0_again, drop_1 = run("drop_0", seed=0), run("drop_0_again", seed=0), run("drop_1", seed=1)
    np.testing.assert_array_equal(drop_0, drop_0_again)  # same seed, same noise
    assert not np.array_equal(drop_0, det_a)
    assert not np.array_equal(drop_0, drop_1)


def test_k_videos_start_from_k_distinct_validation_frames(model_dir, dataset_dir, tmp_path):
    info = gen.generate(model_dir, tmp_path / "out", _settings(frames=2, num_videos=3, deterministic=True),
                        dataset_dir=dataset_dir)
    starts = info["start_frames"]
    assert starts[0] == 16 and len(set(starts)) == 3 and all(15 <= s < 20 for s in starts)
    frames = np.load(tmp_path / "out" / "frames.npy")
    # Each video is the rollout of its own start frame: the same as generating that video alone.
    model, _ = gen.load_generator(model_dir)
    data = np.load(dataset_dir / "frames.npy")
    alone = list(gen.rollout(gen.inference_copy(model), data[starts[2]][None], 2, 1, deterministic=True))
    np.testing.assert_array_equal(frames[:, 2], np.stack(alone)[:, 0])


def test_bn_fold_matches_frozen_batchnorm_model(model_dir):
    model, _ = gen.load_generator(model_dir)
    folded = gen.inference_copy(model)
    assert not any("BatchNormalization" == type(layer).__name__ for layer in folded.layers)
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-5)


def test_context_frames_model_and_residual_copy_baseline(tmp_path, dataset_dir):
    model_dir = _save_model(tmp_path / "model", context_frames=2, residual=True)
    info = gen.generate(model_dir, tmp_path / "out", _settings(frames=3, deterministic=True), dataset_dir=dataset_dir)
    frames = np.load(tmp_path / "out" / "frames.npy")
    # An untrained residual model copies the last frame, in float32 and in bfloat16 (the residual path stays float32).
    start = np.load(dataset_dir / "frames.npy")[info["start_frames"][0]]
    assert np.array_equal(frames[:, 0], np.stack([start] * 3))
    gen.generate(model_dir, tmp_path / "bf16", _settings(frames=2, deterministic=True, precision="bfloat16"),
                 dataset_dir=dataset_dir)
    assert np.array_equal(np.load(tmp_path / "bf16" / "frames.npy")[:, 0], np.stack([start] * 2))


def _interrupted_run(monkeypatch, model_dir, out_dir, settings, dataset_dir, resume_dir) -> None:
    """Run a generation into ``resume_dir`` and kill it (KeyboardInterrupt) while its 8th frame is being produced."""
    real_frames = gen._Generation.frames

    def interrupted(self, steps_done=0, context=None):
        for i, frame in enumerate(real_frames(self, steps_done, context)):
            if i == 7:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(gen._Generation, "frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gen.generate(model_dir, out_dir, settings, dataset_dir=dataset_dir, resume_dir=resume_dir)
    monkeypatch.setattr(gen._Generation, "frames", real_frames)


def test_resume_continues_partial_run_with_same_frames(model_dir, dataset_dir, tmp_path, caplog, monkeypatch):
    settings = _settings(frames=9, chunk_frames=3, num_videos=2)  # dropout on: the noise must continue too
    full = gen.generate(model_dir, tmp_path / "full", settings, dataset_dir=dataset_dir)
    assert full["resumed_at_frame"] == 0
    expected = np.load(tmp_path / "full" / "frames.npy")

    # Interrupt a run after its second flushed chunk (6 frames), as a preemption would.
    resume_dir = tmp_path / "resume"
    _interrupted_run(monkeypatch, model_dir, tmp_path / "out", settings, dataset_dir, resume_dir)
    progress = json.loads((resume_dir / "progress.json").read_text())
    assert progress["frames_done"] >= 6

    with caplog.at_level("INFO", logger="videogen.generate"):
        info = gen.generate(model_dir, tmp_path / "out", settings, dataset_dir=dataset_dir, resume_dir=resume_dir)
    assert info["resumed_at_frame"] == progress["frames_done"]
    assert f"resumed at frame {progress['frames_done']}" in caplog.text
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "frames.npy"), expected)
    assert not (resume_dir / "progress.json").exists()


def test_resume_with_other_settings_starts_over(model_dir, dataset_dir, tmp_path):
    resume_dir = tmp_path / "resume"
    resume_dir.mkdir()
    (resume_dir / "progress.json").write_text(json.dumps({"key": {"frames": 1}, "frames_done": 3}))
    (resume_dir / "frames.npy").write_bytes(b"junk")
    info = gen.generate(model_dir, tmp_path / "out", _settings(frames=4), dataset_dir=dataset_dir,
                        resume_dir=resume_dir)
    assert info["resumed_at_frame"] == 0
    assert np.load(tmp_path / "out" / "frames.npy").shape == (4, 1, SIZE, SIZE, 3)


def test_start_image_is_center_cropped_and_resized(model_dir, tmp_path):
    from PIL import Image

    img = np.zeros((100, 160, 3), np.uint8)
    img[:, 30:130] = 200  # the center square is uniform
    Image.fromarray(img).save(tmp_path / "start.jpg", quality=100)
    start = gen.load_start_image(tmp_path / "start.jpg", SIZE)
    assert start.shape == (SIZE, SIZE, 3) and abs(int(start.mean()) - 200) <= 2
    info = gen.generate(model_dir, tmp_path / "out", _settings(frames=3, num_videos=2),
                        start_image=tmp_path / "start.jpg")
    assert np.load(tmp_path / "out" / "frames.npy").shape == (3, 2, SIZE, SIZE, 3)
    assert info["start_frames"] == [str(tmp_path / "start.jpg")] * 2


def test_npy_stream_header_matches_numpy(tmp_path):
    array = np.arange(2 * 3 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 4, 3)
    np.save(tmp_path / "ref.npy", array)
    assert (tmp_path / "ref.npy").read_bytes() == gen.npy_header(array.shape) + array.tobytes()


@pytest.mark.parametrize("layout", ["missing", "no_model", "bad_json", "bad_model"])
def test_bad_model_dir_is_an_input_error(tmp_path, layout):
    model_dir = tmp_path / "model"
    if layout != "missing":
        model_dir.mkdir()
        (model_dir / "model.json").write_text("{not json" if layout == "bad_json" else '{"image_size": 64}')
        if layout in ("bad_json", "bad_model"):
            (model_dir / "generator.keras").write_bytes(b"not a keras file")
    with pytest.raises(InputError):
        gen.load_generator(model_dir)


def test_decompression_bomb_start_image_is_an_input_error(tmp_path, monkeypatch):
    """A start image over Pillow's decompression-bomb limit (here lowered to 100 pixels) is a one-line InputError,
    not a traceback."""
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 // 2)
    with pytest.raises(InputError, match="too large to open safely"):
        gen.load_start_image(tmp_path / "big.png", 64)


def test_missing_start_is_an_input_error(model_dir, tmp_path):
    with pytest.raises(InputError, match="start"):
        gen.generate(model_dir, tmp_path / "out", _settings())


def test_videogen_generate_command_writes_one_mp4_per_video(model_dir, dataset_dir, tmp_path):
    """`videogen generate` end to end in its own process: K=2 videos -> g.mp4 and g_1.mp4, each an H.264 mp4 with
    exactly --frames frames; --frames-dir keeps the raw frames."""
    out = tmp_path / "videos" / "g.mp4"
    proc = subprocess.run([sys.executable, "-m", "videogen", "generate", "--model", str(model_dir), "--dataset",
                           str(dataset_dir), "--output", str(out), "--frames", "5", "--num-videos", "2",
                           "--precision", "float32", "--frames-dir", str(tmp_path / "frames")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for path in (out, tmp_path / "videos" / "g_1.mp4"):
        stream = ffprobe_stream(path)
        assert (int(stream["nb_read_frames"]), stream["width"], stream["codec_name"]) == (5, SIZE, "h264")
    assert np.load(tmp_path / "frames" / "frames.npy").shape == (5, 2, SIZE, SIZE, 3)


def test_video_names_for_k_videos():
    from videogen.cli import video_names

    assert video_names("out/g.mp4", 1) == ["out/g.mp4"]
    assert video_names("out/g.mp4", 3) == ["out/g.mp4", "out/g_1.mp4", "out/g_2.mp4"]
    assert video_names("s3://b/v/gen.mp4", 2) == ["s3://b/v/gen.mp4", "s3://b/v/gen_1.mp4"]
    assert video_names("dir.x/clip", 2) == ["dir.x/clip", "dir.x/clip_1"]


@pytest.mark.timeout(1500)
def test_bench_quick_smoke(tmp_path):
    """`python -m bench.run --quick` measures every part at tiny sizes and writes results-<cpu kind>.json + .md,
    the kind and the CPU's flags recorded.

    It proves the benchmark runs, not how fast: the limit is generous (it takes under a minute on an idle 2-core
    machine) so that a machine busy with other work does not fail it."""
    from videogen.hardware import cpu_kind

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)], cwd=root,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind = cpu_kind()
    results = json.loads((tmp_path / f"results-{kind}.json").read_text())
    assert {"machine", "generation", "memory", "training", "breakdown", "prepare"} <= set(results)
    assert results["machine"]["cpu_kind"] == kind and "cpu_flags" in results["machine"]
    page = (tmp_path / f"results-{kind}.md").read_text()
    assert "| train 64 px batch 2" in page and "reference with oneDNN on (own process)" in page
    # Generation with the defaults (steering on), and where the train step's time goes, after the table.
    assert "defaults: steering on" in page and "| steering's host-side measurements" in page
    assert page.index("| prepare ") < page.index("| step + pipeline |")


@pytest.fixture(scope="module")
def steered_model_dir(model_dir, dataset_dir, tmp_path_factory):
    """The test model with the steering targets the train stage would save beside it."""
    import shutil

    from videogen import artifacts, steering
    from videogen.train.fit import steering_targets

    steered = tmp_path_factory.mktemp("steered") / "model"
    shutil.copytree(model_dir, steered)
    steering.save_targets(steering_targets(artifacts.open_dataset(dataset_dir), seed=0), steered)
    return steered


def test_steering_is_on_with_targets_and_off_without_or_when_asked(model_dir, steered_model_dir, dataset_dir, tmp_path,
                                                                     caplog):
    """A model dir with steering.npz generates steered (its controller state in generation.json) and differently from
    --no-steer; one without it generates plainly with a warning; --no-steer equals the plain model's frames."""
    steered = gen.generate(steered_model_dir, tmp_path / "on", _settings(), dataset_dir=dataset_dir)
    unsteered = gen.generate(steered_model_dir, tmp_path / "off", _settings(steer=False), dataset_dir=dataset_dir)
    with caplog.at_level("WARNING", logger="videogen.generate"):
        legacy = gen.generate(model_dir, tmp_path / "legacy", _settings(), dataset_dir=dataset_dir)
    assert "no steering.npz" in caplog.text
    assert steered["steering"]["steps"] == 7 and len(steered["steering"]["tau"]) == 1
    assert unsteered["steering"] is None and legacy["steering"] is None
    frames = {name: np.load(tmp_path / name / "frames.npy") for name in ("on", "off", "legacy")}
    np.testing.assert_array_equal(frames["off"], frames["legacy"])
    assert not np.array_equal(frames["on"], frames["off"])


def test_steered_resume_continues_with_the_same_frames(steered_model_dir, dataset_dir, tmp_path, monkeypatch):
    """A steered generation interrupted after a flushed chunk resumes with the controllers' saved state and ends with
    exactly the frames of an uninterrupted run."""
    settings = _settings(frames=9, chunk_frames=3, num_videos=2)
    gen.generate(steered_model_dir, tmp_path / "full", settings, dataset_dir=dataset_dir)
    expected = np.load(tmp_path / "full" / "frames.npy")
    _interrupted_run(monkeypatch, steered_model_dir, tmp_path / "out", settings, dataset_dir, tmp_path / "resume")
    progress = json.loads((tmp_path / "resume" / "progress.json").read_text())
    assert progress["frames_done"] >= 6 and progress["steering"]["steps"] == progress["frames_done"]
    info = gen.generate(steered_model_dir, tmp_path / "out", settings, dataset_dir=dataset_dir,
                        resume_dir=tmp_path / "resume")
    assert info["resumed_at_frame"] == progress["frames_done"]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "frames.npy"), expected)
