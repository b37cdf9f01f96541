"""The paper's random jitter (resize to 1.12 S, random crop S, random mirror) must move the input frames and the target
together: a crop or flip that differed between frame t and frame t+1 would teach the generator a motion that is not in
the video."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from videogen.train import jitter  # noqa: E402

SIZE = 64


def _seed(i):
    return tf.constant([i, 7 * i + 1], tf.int64)


def test_jitter_applies_same_crop_and_flip_to_input_and_target():
    """With target == input (and two identical context frames), every output channel block must still be identical
    after jitter, for many seeds: any difference in crop offset or flip between them would show."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    inputs = np.concatenate([frame, frame], axis=-1)  # K = 2 context frames
    crops = set()
    for i in range(12):
        out_inputs, out_target = jitter(tf.constant(inputs), tf.constant(frame), SIZE, _seed(i))
        out_inputs, out_target = out_inputs.numpy(), out_target.numpy()
        assert out_inputs.dtype == np.uint8 and out_target.dtype == np.uint8
        assert out_inputs.shape == (SIZE, SIZE, 6) and out_target.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(out_inputs[..., :3], out_target)
        np.testing.assert_array_equal(out_inputs[..., 3:], out_target)
        crops.add(out_target.tobytes())
    assert len(crops) > 3, "jitter should draw different crops/flips for different seeds"


def test_jitter_moves_a_marked_pixel_to_the_same_place_in_input_and_target():
    """A bright 4x4 mark on a black input and the same mark on the target land at the same place after jitter, and
    that place changes with the seed (crop offsets and mirrors are really drawn, including both flip outcomes)."""
    inputs = np.zeros((SIZE, SIZE, 3), np.uint8)
    inputs[10:14, 6:10] = 255  # left of centre, so a mirror moves it to the right half
    target = inputs.copy()
    places, mirrored = set(), set()
    for i in range(16):
        out_inputs, out_target = (t.numpy() for t in jitter(tf.constant(inputs), tf.constant(target), SIZE, _seed(i)))
        mark_in = np.argwhere(out_inputs[..., 0] > 128)
        mark_target = np.argwhere(out_target[..., 0] > 128)
        assert len(mark_in) > 0
        np.testing.assert_array_equal(mark_in, mark_target)
        places.add(tuple(mark_in.mean(axis=0).round(1)))
        mirrored.add(bool(mark_in[:, 1].mean() > SIZE / 2))
    assert len(places) > 3
    assert mirrored == {True, False}


def test_jitter_is_reproducible_for_a_seed():
    """Same stateless seed, same output: a data pipeline replays exactly what a test checks."""
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    first = [t.numpy() for t in jitter(tf.constant(inputs), tf.constant(target), SIZE, _seed(3))]
    second = [t.numpy() for t in jitter(tf.constant(inputs), tf.constant(target), SIZE, _seed(3))]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
