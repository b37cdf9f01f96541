"""Train stage: real TensorFlow training at tiny sizes (64 px, ngf/ndf 8): steps, checkpoints, resume, refinement,
context frames, export, and one-line user errors."""

import json
import logging

import numpy as np
import pytest

from tests.media import moving_square_frames
from videogen.errors import InputError
from videogen.frames import context_indices as _context_indices
from videogen.train import TrainSettings, plan_phases, train
from videogen.train.data import real_examples as _real_examples

TINY = dict(batch_size=2, ngf=8, ndf=8, log_every=1, refine_rounds=0)


def write_dataset(path, num_frames=24, size=64, train=(0, 18), frames=None):
    """A dataset dir per the contract in docs/design.md, written directly (not through videogen.dataset)."""
    path.mkdir(parents=True, exist_ok=True)
    frames = moving_square_frames(num_frames, size) if frames is None else frames
    np.save(path / "frames.npy", frames)
    info = {"fps": 25.0, "image_size": frames.shape[1], "num_frames": len(frames), "source": "synthetic",
            "train": list(train), "val": [train[1] + 1, len(frames) - 1], "start_frame": train[1] + 2}
    (path / "dataset.json").write_text(json.dumps(info))
    return path


@pytest.fixture
def dataset_dir(tmp_path):
    return write_dataset(tmp_path / "dataset")


def load_generator(path):
    import keras

    return keras.models.load_model(path, compile=False)


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_generator_and_discriminator_output_shapes_per_image_size(size):
    """The U-Net maps (B,S,S,3K) to (B,S,S,3) at every supported size and the PatchGAN gives (B,S/8-2,S/8-2,1)."""
    import tensorflow as tf

    from videogen.model import build_discriminator, build_generator

    generator = build_generator(size, ngf=4, context_frames=2)
    discriminator = build_discriminator(size, ndf=4, context_frames=2)
    frames = tf.zeros((2, size, size, 6))
    out = generator(frames, training=False)
    assert out.shape == (2, size, size, 3)
    logits = discriminator([frames, out], training=False)
    assert logits.shape == (2, size // 8 - 2, size // 8 - 2, 1)


def test_context_indices_stack_oldest_first_and_clamp_at_block_start():
    """Pair i uses frames i-K+1..i, oldest first, repeating the block's first frame where history is missing."""
    assert _context_indices(10, 10, 3) == [10, 10, 10]
    assert _context_indices(11, 10, 3) == [10, 10, 11]
    assert _context_indices(15, 10, 3) == [13, 14, 15]
    assert _context_indices(5, 0, 1) == [5]


def test_real_examples_pair_context_frames_with_the_next_frame():
    """The tf.data stream reads frames i-K+1..i stacked on channels and frame i+1 as target from the memory map."""
    frames = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None], 64 * 64 * 3).reshape(20, 64, 64, 3)
    seen = set()
    for inputs, target in _real_examples(frames, 4, 12, context_frames=2, seed=0).take(16):
        inputs, target = inputs.numpy(), target.numpy()
        assert inputs.shape == (64, 64, 6) and target.shape == (64, 64, 3) and inputs.dtype == np.uint8
        older, newer, nxt = int(inputs[0, 0, 0]), int(inputs[0, 0, 3]), int(target[0, 0, 0])
        assert nxt == newer + 1 and older == max(4, newer - 1)
        seen.add(newer)
    assert seen <= set(range(4, 12)) and len(seen) > 4


@pytest.mark.parametrize("reverse", [0.0, 0.5, 1.0])
def test_reversed_examples_play_the_frames_backwards_in_the_share_asked(reverse):
    """With ``reverse`` r, about a share r of the examples are frames i+1, i -> i-1 (every frame of the example in
    reverse order), the rest i-1, i -> i+1; a pair at a block's start (clamped context) reverses to i+1, i -> i."""
    from videogen.train.data import block_examples

    frames = np.repeat(np.arange(30, dtype=np.uint8)[:, None, None, None], 8 * 8 * 3).reshape(30, 8, 8, 3)
    back = 0
    for inputs, target in block_examples(frames, [(0, 29)], 2, seed=3, deterministic=True, reverse=reverse).take(300):
        assert inputs.shape == (8, 8, 6) and target.shape == (8, 8, 3)
        seq = [int(inputs[0, 0, 0]), int(inputs[0, 0, 3]), int(target[0, 0, 0])]
        forward = seq in ([0, 0, 1], [seq[0], seq[0] + 1, seq[0] + 2])
        backward = seq in ([1, 0, 0], [seq[0], seq[0] - 1, seq[0] - 2])
        assert forward != backward, seq
        back += backward
    assert abs(back / 300 - reverse) < 0.1


def test_training_pairs_stop_at_shot_cuts():
    """A pair whose two frames are in different shots is dropped and the pairs after the cut form a block of their
    own, so no context reaches back across it; a clip without cuts keeps its block, and blocks with no pair left
    (here one pair, across the cut) are kept as they were rather than leaving nothing to train on."""
    from videogen.train.data import shot_blocks

    frames = moving_square_frames(40, 64)
    assert shot_blocks(frames, [(0, 39)]) == [(0, 39)]
    frames[20:] = 255 - frames[20:]  # another shot from frame 20
    assert shot_blocks(frames, [(0, 39)]) == [(0, 19), (20, 39)]
    assert shot_blocks(frames, [(0, 10), (15, 30)]) == [(0, 10), (15, 19), (20, 30)]
    assert shot_blocks(frames, [(19, 20)]) == [(19, 20)]


def test_training_on_a_clip_with_a_cut_counts_the_pairs_of_each_shot(tmp_path):
    """model.json records the shots trained on and the pairs drawn: 17 of the 18 training pairs, in two shots."""
    frames = moving_square_frames(24, 64)
    frames[10:] = 255 - frames[10:]
    out = tmp_path / "model"
    train(write_dataset(tmp_path / "dataset", frames=frames), out, TrainSettings(max_steps=1, **TINY))
    saved = json.loads((out / "model.json").read_text())["dataset"]
    assert (saved["shots"], saved["pairs"], saved["videos"]) == (2, 17, 1)


def test_two_training_steps_give_finite_losses_and_write_a_checkpoint(dataset_dir, tmp_path):
    """Two real steps: finite losses, a checkpoint at step 2, TensorBoard events, a loadable generator, model.json."""
    out = tmp_path / "model"
    info = train(dataset_dir, out, TrainSettings(max_steps=2, checkpoint_every=1, **TINY))
    assert info["steps"] == 2
    points = info["history"]["points"]
    assert [p["step"] for p in points] == [1, 2]
    assert all(np.isfinite(p[k]) for p in points for k in ("gen_total", "gen_gan", "gen_l1", "disc"))
    assert (out / "checkpoints" / "checkpoint").exists()
    assert list((out / "checkpoints").glob("ckpt-2.index"))
    assert list((out / "logs").glob("events.out.tfevents.*"))
    saved = json.loads((out / "model.json").read_text())
    k = TrainSettings().context_frames  # the default (2 since docs/quality.md's measurements)
    assert saved["image_size"] == 64 and saved["fps"] == 25.0 and saved["context_frames"] == k
    assert saved["settings"]["max_steps"] == 2 and saved["residual"] is True
    assert saved["norm"] == TrainSettings().norm and saved["dropout"] == TrainSettings().dropout
    generator = load_generator(out / "generator.keras")
    assert generator(np.zeros((1, 64, 64, 3 * k), np.float32)).shape == (1, 64, 64, 3)


def test_exported_generator_is_the_warmed_up_moving_average_of_the_weights(dataset_dir, tmp_path):
    """The exported generator is the weights' moving average, not the last weights: after two steps it is 2/11 of
    the weights after step 1 plus 9/11 of those after step 2 (the first update copies, the second decays by
    min(decay, 2/11)), read from the run's own checkpoints (runs are not bit-reproducible across processes)."""
    import tensorflow as tf

    out = tmp_path / "model"
    train(dataset_dir, out, TrainSettings(max_steps=2, ema_decay=0.99, checkpoint_every=1, **TINY))
    exported = [w.numpy() for w in load_generator(out / "generator.keras").trainable_weights]

    def last_weights(step: int) -> list[np.ndarray]:  # the optimizer's references to the generator's variables
        path = str(out / "checkpoints" / f"ckpt-{step}")
        return [tf.train.load_variable(path, f"generator_optimizer/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
                for i in range(len(exported))]

    first, last = last_weights(1), last_weights(2)
    for average, w1, w2 in zip(exported, first, last):
        np.testing.assert_allclose(average, 2 / 11 * w1 + 9 / 11 * w2, rtol=1e-5, atol=1e-7)
    assert max(np.abs(a - w).max() for a, w in zip(exported, last)) > 1e-6


def test_training_resumes_from_checkpoint_at_the_right_step(dataset_dir, tmp_path, caplog):
    """4 steps (checkpoint every 2), then the same dirs asked for 6: the run restores step 4, logs it, ends at 6, and
    the loss history runs 1..6 without a gap or a repeat."""
    out = tmp_path / "model"
    train(dataset_dir, out, TrainSettings(max_steps=4, checkpoint_every=2, **TINY))
    with caplog.at_level(logging.INFO, logger="videogen.train"):
        info = train(dataset_dir, out, TrainSettings(max_steps=6, checkpoint_every=2, **TINY))
    assert "resumed from step 4" in caplog.text
    assert info["steps"] == 6 and info["resumed_from_step"] == 4
    assert [p["step"] for p in info["history"]["points"]] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_mirror_to_object_storage_and_resume_in_a_fresh_dir(dataset_dir, tmp_path, monkeypatch, caplog,
                                                                        s3_server, s3_bucket):
    """With an s3:// checkpoint dir on the loopback S3 server: the model dir (the task's output artifact) holds no
    checkpoints, the prefix holds only the checkpoints the manager keeps (3 of 5 saved, older ones deleted), and a run
    in a fresh output dir (a retried pod) downloads just the latest one and resumes from it."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    client = s3_server.minio()
    uri = f"s3://{s3_bucket}/run-1/train"

    def remote_checkpoints() -> set[str]:
        return {o.object_name.rsplit("/", 1)[1].split(".")[0]
                for o in client.list_objects(s3_bucket, prefix="run-1/train/", recursive=True)
                if o.object_name.rsplit("/", 1)[1].startswith("ckpt-")}

    train(dataset_dir, tmp_path / "first", TrainSettings(max_steps=5, checkpoint_every=1, **TINY), uri)
    assert not (tmp_path / "first" / "checkpoints").exists()
    assert remote_checkpoints() == {"ckpt-3", "ckpt-4", "ckpt-5"}
    with caplog.at_level(logging.INFO, logger="videogen.train"):
        info = train(dataset_dir, tmp_path / "retry", TrainSettings(max_steps=6, checkpoint_every=1, **TINY), uri)
    assert "fetched checkpoint ckpt-5" in caplog.text and "resumed from step 5" in caplog.text
    assert info["steps"] == 6 and not (tmp_path / "retry" / "checkpoints").exists()
    assert remote_checkpoints() == {"ckpt-4", "ckpt-5", "ckpt-6"}


def test_refinement_rounds_run_end_to_end_at_64px(dataset_dir, tmp_path, caplog):
    """Main phase then two refine rounds inside the same step budget: each round rolls the model out, trains on
    rollout pairs mixed with real ones, and model.json reports per-phase losses; input noise is on as well."""
    settings = TrainSettings(max_steps=8, checkpoint_every=100, batch_size=2, ngf=8, ndf=8, log_every=2,
                             refine_rounds=2, refine_fraction=0.5, rollout_length=3, rollout_starts=4,
                             input_noise=0.02)
    assert [(p["first_step"], p["end_step"]) for p in plan_phases(settings, 8)] == [(0, 4), (4, 6), (6, 8)]
    with caplog.at_level(logging.INFO, logger="videogen.train"):
        info = train(dataset_dir, tmp_path / "model", settings)
    assert info["steps"] == 8
    phases = info["history"]["phases"]
    assert [p["name"] for p in phases] == ["main", "refine1", "refine2"]
    assert all(p["mean"] and np.isfinite(p["mean"]["gen_l1"]) for p in phases)
    assert caplog.text.count("12 rollout pairs") == 2  # 4 starts x 3 predicted steps, per round


def test_context_frame_model_trains_exports_and_loads(dataset_dir, tmp_path):
    """K=2: the generator takes 6 channels, model.json records K, and the exported model loads and runs on CPU;
    untrained-style residual output stays in [-1, 1]."""
    out = tmp_path / "model"
    info = train(dataset_dir, out, TrainSettings(max_steps=2, context_frames=2, checkpoint_every=10, **TINY))
    assert info["context_frames"] == 2
    generator = load_generator(out / "generator.keras")
    frames = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 6)).astype(np.float32)
    prediction = np.asarray(generator(frames))
    assert prediction.shape == (1, 64, 64, 3) and prediction.min() >= -1 and prediction.max() <= 1


def test_batch_is_clamped_to_a_small_dataset_with_a_warning(tmp_path, caplog):
    """Three training pairs and batch 16: training runs at batch 3 and says so; max_epoch sets the steps."""
    data = write_dataset(tmp_path / "small", num_frames=8, train=(0, 3))
    with caplog.at_level(logging.WARNING, logger="videogen.train"):
        info = train(data, tmp_path / "model", TrainSettings(max_epoch=1, batch_size=16, ngf=8, ndf=8,
                                                             refine_rounds=0))
    assert "clamped from 16 to 3" in caplog.text
    assert info["batch_size"] == 3 and info["steps"] == 1


@pytest.mark.parametrize("settings, message", [
    (TrainSettings(batch_size=0), "batch_size"),
    (TrainSettings(max_steps=-1), "max_steps"),
    (TrainSettings(max_steps=0, max_epoch=0), "max_steps or max_epoch"),
    (TrainSettings(jit_compile="sometimes"), "jit_compile"),
    (TrainSettings(refine_fraction=1.0), "refine_fraction"),
    (TrainSettings(ema_decay=1.0), "ema_decay"),
    (TrainSettings(reverse=1.5), "reverse"),
])
def test_bad_settings_raise_one_line_input_error(dataset_dir, tmp_path, settings, message):
    """Impossible settings fail before any work with a one-line InputError naming the setting."""
    with pytest.raises(InputError, match=message) as error:
        train(dataset_dir, tmp_path / "model", settings)
    assert "\n" not in str(error.value)


def test_bad_dataset_dirs_raise_one_line_input_error(tmp_path):
    """A missing dir, a dir without frames.npy, and an image-size mismatch are user errors, not tracebacks."""
    settings = TrainSettings(max_steps=1, **TINY)
    with pytest.raises(InputError, match="does not exist"):
        train(tmp_path / "nowhere", tmp_path / "model", settings)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="frames.npy is missing"):
        train(empty, tmp_path / "model", settings)
    mismatch = write_dataset(tmp_path / "mismatch", num_frames=8, train=(0, 5))
    (mismatch / "dataset.json").write_text(json.dumps({**json.loads((mismatch / "dataset.json").read_text()),
                                                       "image_size": 128}))
    with pytest.raises(InputError, match="image size mismatch"):
        train(mismatch, tmp_path / "model", settings)
