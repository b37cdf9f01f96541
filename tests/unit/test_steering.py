"""Steering (videogen/steering.py): each controller moves the right way on real measurements, the targets survive
the model dir, and a steered rollout keeps a fading generator moving where the plain feedback loop freezes."""

from __future__ import annotations

import numpy as np
import pytest

from videogen import steering
from videogen import video_quality as vq

SIDE = 32


def texture(seed: int = 0, side: int = 96) -> np.ndarray:
    """A smooth random RGB texture (uint8), larger than the frames cut from it."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (side // 4, side // 4, 3)).astype(np.uint8)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


def panning_clip(frames: int = 40, speed: int = 1, seed: int = 0) -> np.ndarray:
    """A camera panning over a texture at ``speed`` px per frame: (T, SIDE, SIDE, 3) uint8."""
    tex = texture(seed)
    return np.stack([tex[8:8 + SIDE, 8 + speed * t:8 + speed * t + SIDE] for t in range(frames)])


@pytest.fixture(scope="module")
def targets() -> steering.Targets:
    clip = panning_clip()
    return steering.clip_targets([clip[:30]], [clip[30:]], seed=0)


def test_targets_measure_the_clip_and_round_trip_through_the_model_dir(targets, tmp_path):
    """The motion target is the clip's flow (a 1 px/frame pan measures near 1 px), the anchors are its training frames,
    and steering.npz gives back the same targets."""
    assert 0.6 < targets.motion_px < 1.4
    assert targets.sharpness > 0 and targets.patch_distance > 0
    assert targets.anchors.shape == (30, SIDE, SIDE, 3) and targets.anchors.dtype == np.uint8
    steering.save_targets(targets, tmp_path)
    loaded = steering.load_targets(tmp_path)
    assert loaded.motion_px == pytest.approx(targets.motion_px)
    assert loaded.patch_distance == pytest.approx(targets.patch_distance)
    np.testing.assert_array_equal(loaded.anchors, targets.anchors)
    np.testing.assert_array_equal(loaded.distance_bank, targets.distance_bank)
    assert steering.load_targets(tmp_path / "missing") is None


def run_controller(targets, previous: np.ndarray, frame: np.ndarray, steps: int = 20,
                   look: str = "patch") -> steering.Controllers:
    controllers = steering.Controllers(targets, 1, look=look)
    for _ in range(steps):
        controllers.update(previous[None], frame[None])
    return controllers


def test_a_frozen_video_raises_the_change_scale_and_a_jumpy_one_lowers_it(targets):
    """Motion: no motion between frames pushes tau up; motion far beyond the clip's pushes it down."""
    clip = panning_clip(speed=1)
    frozen = run_controller(targets, clip[0], clip[0])
    assert frozen.tau[0] > 1.5
    jumpy = run_controller(targets, panning_clip(speed=1)[0], panning_clip(seed=5)[0])
    assert jumpy.tau[0] < 1.0


def test_a_blurred_video_gets_sharpened_and_a_noisy_one_smoothed(targets):
    """Detail: a blurred frame drives the unsharp amount up; a frame of pixel noise drives it below zero."""
    import cv2

    frame = panning_clip()[10]
    blurred = cv2.GaussianBlur(frame, (0, 0), 2.0)
    assert run_controller(targets, blurred, blurred).amount[0] > 0.2
    noise = np.random.default_rng(0).integers(0, 256, frame.shape).astype(np.uint8)
    assert run_controller(targets, noise, noise).amount[0] < -0.2


def test_a_frame_off_the_clip_is_pulled_back_harder_than_a_real_one(targets):
    """Look: a moving frame of another texture raises the look weight; a moving real frame lowers the whole-frame
    anchor's weight and keeps the patch projection at its floor."""
    clip = panning_clip()
    strangers = panning_clip(seed=7)
    assert run_controller(targets, strangers[0], strangers[1], look="frame").weight[0] > steering.FRAME_LOOK.start
    assert run_controller(targets, clip[4], clip[5], look="frame").weight[0] < steering.FRAME_LOOK.start
    assert run_controller(targets, strangers[0], strangers[1]).weight[0] > steering.PATCH_LOOK.start + 0.2
    assert run_controller(targets, clip[4], clip[5]).weight[0] == pytest.approx(steering.PATCH_LOOK.start)


def test_a_stalling_video_eases_the_pull_toward_the_clip(targets):
    """Look gives way to motion: a frame off the clip that does not move lowers the look weight instead of raising it,
    with either look (a strong whole-frame pull holds a stalled video on one training frame; a strong patch
    projection snaps small changes back to the same patches, so a slow video stutters); once it moves again the
    patch projection's weight climbs back to its floor."""
    stranger = panning_clip(seed=7)[0]
    assert run_controller(targets, stranger, stranger, look="frame").weight[0] < steering.FRAME_LOOK.start
    stalled = run_controller(targets, stranger, stranger)
    assert stalled.weight[0] < 0.2 * steering.PATCH_LOOK.start
    clip = panning_clip()
    for _ in range(8):
        stalled.update(clip[4][None], clip[5][None])
    assert stalled.weight[0] == pytest.approx(steering.PATCH_LOOK.start)


def test_controller_state_round_trips(targets):
    """A resumed generation continues with the same controller state."""
    clip = panning_clip()
    a = run_controller(targets, clip[0], clip[0], steps=5)
    b = steering.Controllers(targets, 1)
    b.restore(a.state())
    assert b.state() == a.state()
    with pytest.raises(ValueError):
        b.restore({"tau": [1.0, 2.0], "amount": [0.0], "weight": [0.1], "motion": [1.0], "change": [1.0]})


def test_controller_patch_distances_are_numpys_nearest_distances(targets):
    """The look controller's bank product (on TensorFlow's thread pool) gives NumPy's nearest-patch distances."""
    clip = panning_clip()
    rng = np.random.default_rng(3)
    queries = steering._patches(clip[:4], steering.DISTANCE_FRAME_PATCHES, rng)
    controllers = steering.Controllers(targets, 1)
    products = controllers._bank_products(queries)
    np.testing.assert_allclose(products, queries @ targets.distance_bank.T, rtol=1e-5, atol=1e-2)
    bank, bank_sq = targets.distance_bank, controllers.distance_bank_sq
    np.testing.assert_allclose(steering.nearest_distances(queries, bank, bank_sq, products),
                               steering.nearest_distances(queries, bank), rtol=1e-4)
    assert controllers._bank_products(queries[:5]).shape == (5, len(targets.distance_bank))


def fading_generator(damping: float):
    """A real Keras generator (K=2) that extrapolates the last change but damped: last + damping*(last - previous).
    Fed back, its motion shrinks by ``damping`` every step: the way a median predictor freezes."""
    import keras

    inputs = keras.Input((SIDE, SIDE, 6))
    previous, last = inputs[..., :3], inputs[..., 3:]
    return keras.Model(inputs, keras.ops.clip(last + damping * (last - previous), -1.0, 1.0))


def test_steering_keeps_a_fading_generator_moving_where_the_plain_loop_freezes(targets):
    """End to end with TensorFlow: the plain rollout of a damped extrapolator stops moving (motion < 0.5 of the
    clip's); steered with either look it keeps moving at the clip's level in every window, and with the whole-frame
    anchor it also stays close to the clip's look."""
    from videogen.frames import rollout, stack_context

    clip = panning_clip()
    model = fading_generator(0.8)
    start = stack_context(clip[None, 28:30])
    plain = np.concatenate(list(rollout(model, start, 150, 2, deterministic=True)))
    ref = vq.reference(clip[:30], clip[30:], clip)
    assert max(vq.score_video(plain, ref=ref, window=50)["motion"][1:]) < 0.5
    for look in steering.LOOKS:
        controllers = steering.Controllers(targets, 1, look=look)
        steered = np.concatenate(list(steering.steered_rollout(model, targets, start, 150, 2, controllers,
                                                               deterministic=True)))
        steered_scores = vq.score_video(steered, ref=ref, window=50)
        assert all(0.5 <= m <= 2.0 for m in steered_scores["motion"]), look
        if look == "frame":  # blending toward whole training frames also holds the look of this extrapolator
            assert steered_scores["realism"][-1] <= 1.5


def noisy_panner(noise: float):
    """A real Keras generator (K=2) that pans the last frame 1 px left like the clip (zeros enter at the right
    border) and adds Gaussian noise while dropout-style randomness is on: fed back, the noise and the black border
    build up, the way a generator's small errors compound into mush."""
    import keras

    inputs = keras.Input((SIDE, SIDE, 6))
    last = inputs[..., 3:]
    shifted = keras.ops.concatenate([last[:, :, 1:], keras.ops.zeros_like(last[:, :, :1])], axis=2)
    return keras.Model(inputs, keras.ops.clip(keras.layers.GaussianNoise(noise, seed=0)(shifted), -1.0, 1.0))


def test_the_patch_projection_keeps_a_noisy_generator_on_the_clips_look(targets):
    """End to end with TensorFlow: fed back plainly, a noisy panning generator turns to noise (sharpness many times
    the clip's, patches far from the clip's); steered with the patch projection the same generator keeps the clip's
    sharpness, much of its look, and its motion."""
    from videogen.frames import rollout, stack_context

    clip = panning_clip()
    model = noisy_panner(0.05)
    start = stack_context(clip[None, 28:30])
    ref = vq.reference(clip[:30], clip[30:], clip)
    plain = vq.score_video(np.concatenate(list(rollout(model, start, 150, 2, deterministic=False, seed=0))), ref=ref,
                           window=50)
    controllers = steering.Controllers(targets, 1, look="patch")
    steered = vq.score_video(np.concatenate(list(steering.steered_rollout(
        model, targets, start, 150, 2, controllers, deterministic=False, seed=0))), ref=ref, window=50)
    assert plain["sharpness"][-1] > 5.0
    assert all(0.6 <= s <= 2.0 for s in steered["sharpness"])
    assert steered["realism"][-1] < 0.75 * plain["realism"][-1]
    assert all(0.5 <= m <= 2.0 for m in steered["motion"])


def test_the_patch_look_ramps_in_so_the_first_frame_is_the_models_own(targets):
    """The patch look's blend weight rises from 0 over its first frames (the controller's own weight is unchanged):
    frame 1 of a steered rollout is exactly the generator's plain output, frame ``ramp_frames`` and later get the
    whole weight; a resumed run (steps carried) continues the ramp, it does not restart it."""
    from videogen.frames import rollout, stack_context

    look = steering.PATCH_LOOK
    assert look.ramp_frames > 0
    weight = np.array([0.5], np.float32)
    assert look.applied(weight, 0)[0] == 0.0
    assert look.applied(weight, look.ramp_frames // 2)[0] == pytest.approx(0.5 * (look.ramp_frames // 2)
                                                                             / look.ramp_frames)
    assert look.applied(weight, look.ramp_frames)[0] == pytest.approx(0.5)
    assert look.applied(weight, 10 * look.ramp_frames)[0] == pytest.approx(0.5)
    assert steering.FRAME_LOOK.applied(weight, 0)[0] == pytest.approx(0.5)  # the older look has no ramp

    clip = panning_clip()
    model = fading_generator(0.8)
    start = stack_context(clip[None, 28:30])
    plain = next(iter(rollout(model, start, 1, 2, deterministic=True)))
    controllers = steering.Controllers(targets, 1, look="patch")
    steered = list(steering.steered_rollout(model, targets, start, look.ramp_frames + 2, 2, controllers,
                                            deterministic=True))
    np.testing.assert_array_equal(steered[0], plain)
    later = steering.Controllers(targets, 1, look="patch")
    later.restore(controllers.state())
    assert look.applied(later.weight, later.steps)[0] == pytest.approx(later.weight[0])


def test_the_patch_projector_removes_noise_and_keeps_a_real_frame():
    """The look correction's projection onto the clip's patches: a training frame comes back as it was, even under
    strong noise (every noisy patch snaps back to its clean self); a held-out frame of the clip stays close, and its
    noise drops by more than half (its patches are near, not in, the bank)."""
    clip = panning_clip(frames=40)
    project = steering.make_projector(clip[:30])
    rng = np.random.default_rng(0)
    # The held-out frames' rightmost columns show texture the training frames never did: score the rest.
    seen = np.s_[:, :, :SIDE - 8]
    for frames, kept_max, denoise in ((clip[10:14], 0.5, 20.0), (clip[30:34], 6.0, 2.0)):
        clean = frames.astype(np.float32) / 127.5 - 1.0
        noisy = clean + rng.normal(0.0, 0.1, clean.shape).astype(np.float32)
        kept, denoised = (np.asarray(project(x)) for x in (clean, noisy))
        assert kept.shape == denoised.shape == clean.shape
        assert np.abs(kept - clean)[seen].mean() * 127.5 < kept_max
        assert np.abs(denoised - clean)[seen].mean() * denoise < np.abs(noisy - clean)[seen].mean()


def test_the_patch_projector_works_at_sizes_above_its_own():
    """Frames larger than the projector's sides are projected at those sides and corrected by the upsampled
    difference: the shape is kept and a training frame stays as it was."""
    import cv2

    big = np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_CUBIC) for f in panning_clip(frames=12)])
    project = steering.make_projector(big[:10])
    frame = big[4:6].astype(np.float32) / 127.5 - 1.0
    out = np.asarray(project(frame))
    assert out.shape == frame.shape
    assert np.abs(out - frame).mean() * 127.5 < 1.0


def test_steering_looks_are_checked(targets):
    """Both looks run, and an unknown one is a clear error."""
    model = fading_generator(0.8)
    start = np.repeat(panning_clip()[None, 29], 2, axis=-1)
    for look in steering.LOOKS:
        controllers = steering.Controllers(targets, 1, look=look)
        frames = list(steering.steered_rollout(model, targets, start, 2, 2, controllers, deterministic=True))
        assert frames[-1].shape == (1, SIDE, SIDE, 3)
    with pytest.raises(ValueError, match="look must be one of"):
        steering.Controllers(targets, 1, look="nearest")
    with pytest.raises(ValueError, match="look must be one of"):
        steering.make_steered_step(model, targets, 2, True, look="nearest")


def test_the_clip_motion_target_leaves_out_the_flow_across_a_shot_cut():
    """The clip's motion target is the mean optical flow of its consecutive frames within a shot: the flow across a
    cut (here the moving square's colours inverted from frame 20) is no motion of the clip and is left out."""
    from tests.media import moving_square_frames

    frames = moving_square_frames(40, 64)
    frames[20:] = 255 - frames[20:]
    flows = [steering.flow_magnitude(frames[t - 1], frames[t]) for t in range(1, 40)]
    motion, _ = steering._motion([frames])
    assert motion == pytest.approx(np.mean(flows[:19] + flows[20:]))
    assert abs(np.mean(flows) - motion) > 0.01
