"""Training through the model's own rollouts (``unroll_steps``): the windows the data stream builds, the losses and
gradients of the unrolled step (backprop through the fed-back predictions), a whole run, and the settings checks."""

import numpy as np
import pytest

from tests.unit.test_train import TINY, write_dataset
from videogen.errors import InputError
from videogen.frames import stack_context
from videogen.train import TrainSettings, plan_phases, train
from videogen.train.data import pair_example, window_blocks


def test_window_example_holds_the_context_and_the_next_real_frames():
    """Pair 5 with K=2, U=3: inputs are frames 4, 5 (context), 6, 7 (the real frames the fed-back steps replace),
    target frame 8; U=1 is the plain pair. Windows stay inside their block."""
    frames = np.arange(12, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    inputs, target = pair_example(frames, 5, 0, 2, unroll_steps=3)
    assert inputs.shape == (4, 4, 12) and target.shape == (4, 4, 3)
    assert [int(inputs[0, 0, 3 * i]) for i in range(4)] == [4, 5, 6, 7] and int(target[0, 0, 0]) == 8
    plain_inputs, plain_target = pair_example(frames, 5, 0, 2)
    assert np.array_equal(plain_inputs, stack_context(frames[[4, 5]])) and int(plain_target[0, 0, 0]) == 6
    assert window_blocks([(0, 10), (20, 22)], 3) == [(0, 8)]  # pairs 0..7 reach frame 10; 2 pairs are too short
    assert window_blocks([(0, 10)], 1) == [(0, 10)]


def _tiny_models():
    import keras

    from videogen.model import build_discriminator, build_generator

    keras.utils.set_random_seed(0)
    return build_generator(64, 4, 2, True, dropout=0.0), build_discriminator(64, 4, 2)


class _Recorder:
    """An optimizer stand-in that keeps the gradients it is given."""

    def __init__(self):
        self.grads = None

    def apply_gradients(self, pairs):
        self.grads = [g.numpy() for g, _ in pairs]


def test_unrolled_step_feeds_rounded_predictions_back_and_backpropagates_through_them():
    """U=2, K=2, L1 only: the step's L1 is the mean of step 1 (real context) and step 2 (context = last real frame +
    the 8-bit-rounded first prediction), and its generator gradient is that of this chain with the gradient flowing
    through the fed-back prediction (straight-through rounding), not the one with the fed-back frame held constant."""
    import tensorflow as tf

    from videogen.frames import tf_to_float
    from videogen.train.step import _step_body

    generator, discriminator = _tiny_models()
    rng = np.random.default_rng(0)
    window = rng.integers(0, 256, (2, 64, 64, 12), dtype=np.uint8)  # frames 0, 1 (context), 2, 3 (real next)
    inputs, target = window[..., :9], window[..., 9:]
    g_rec, d_rec = _Recorder(), _Recorder()
    body = _step_body(generator, discriminator, g_rec, d_rec, gan_weight=0.0, l1_weight=1.0, input_noise=0.0,
                      global_batch_size=None, context_frames=2, unroll_steps=2)
    losses = [float(v) for v in body(tf.constant(inputs), tf.constant(target))]

    frames = tf_to_float(tf.constant(window))
    weights = generator.trainable_variables

    def chain(through: bool):
        with tf.GradientTape() as tape:
            first = generator(frames[..., :6], training=True)
            rounded = tf.round((first + 1.0) * 127.5) / 127.5 - 1.0
            fed = first + tf.stop_gradient(rounded - first) if through else tf.stop_gradient(rounded)
            second = generator(tf.concat([frames[..., 3:6], fed], -1), training=True)
            l1 = (tf.reduce_mean(tf.abs(frames[..., 6:9] - first)) + tf.reduce_mean(tf.abs(frames[..., 9:] - second))) / 2
        return float(l1), [g.numpy() for g in tape.gradient(l1, weights)]

    l1, bptt = chain(True)
    _, cut = chain(False)
    assert losses[2] == pytest.approx(l1, rel=1e-5) and losses[0] == pytest.approx(l1, rel=1e-5)

    def distance(a, b):
        return np.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b)))

    norm = np.sqrt(sum(float(np.sum(g ** 2)) for g in bptt))
    assert distance(g_rec.grads, bptt) < 1e-4 * norm
    assert distance(bptt, cut) > 1e-3 * norm  # the path through the fed-back frame matters
    assert d_rec.grads is not None and all(np.isfinite(g).all() for g in d_rec.grads)


def test_unroll_phase_takes_the_last_unroll_fraction_of_the_steps():
    """unroll_steps > 1 splits the budget into main (one step) and unroll; fraction 1 is all unroll."""
    assert plan_phases(TrainSettings(unroll_steps=4, unroll_fraction=0.25), 100) == [
        {"name": "main", "first_step": 0, "end_step": 75}, {"name": "unroll", "first_step": 75, "end_step": 100}]
    assert [p["name"] for p in plan_phases(TrainSettings(unroll_steps=4), 100)] == ["unroll"]
    assert [p["name"] for p in plan_phases(TrainSettings(unroll_fraction=0.5), 100)] == ["main"]  # unroll_steps 1


def test_unrolled_training_runs_end_to_end_and_exports_a_plain_generator(tmp_path, caplog):
    """unroll_steps=3 on the last half of 4 steps, K=2, input noise: both phases run with finite losses, model.json
    records them and the setting, and the exported generator still takes K frames (6 channels)."""
    import keras

    dataset = write_dataset(tmp_path / "dataset")
    info = train(dataset, tmp_path / "model", TrainSettings(max_steps=4, checkpoint_every=10, context_frames=2,
                                                            unroll_steps=3, unroll_fraction=0.5, input_noise=0.02,
                                                            **TINY))
    assert info["steps"] == 4 and info["settings"]["unroll_steps"] == 3
    assert [(p["name"], p["first_step"], p["end_step"]) for p in info["history"]["phases"]] == [
        ("main", 0, 2), ("unroll", 2, 4)]
    assert all(np.isfinite(p["gen_l1"]) for p in info["history"]["points"])
    generator = keras.models.load_model(tmp_path / "model" / "generator.keras", compile=False)
    assert generator.input_shape[-1] == 6


@pytest.mark.parametrize("settings, message", [
    (TrainSettings(max_steps=2, unroll_steps=0), "unroll_steps must be >= 1"),
    (TrainSettings(max_steps=2, unroll_steps=2, unroll_fraction=0.0), "unroll_fraction"),
    (TrainSettings(max_steps=2, unroll_steps=2, refine_rounds=1), "do not combine"),
    (TrainSettings(max_steps=2, unroll_steps=30, **{k: v for k, v in TINY.items()}), "at least that many pairs"),
])
def test_bad_unroll_settings_raise_one_line_input_error(tmp_path, settings, message):
    """unroll_steps below 1, combined with refine rounds, or longer than every training block: one-line errors."""
    dataset = write_dataset(tmp_path / "dataset")
    with pytest.raises(InputError, match=message) as error:
        train(dataset, tmp_path / "model", settings)
    assert "\n" not in str(error.value)
