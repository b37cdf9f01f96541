"""The video judge tells real footage from made-up failures, each on the measure meant for it.

Every clip (the three development clips at 64 px and a synthetic clip of discs bouncing over a still background) is
cut into training, held-out and test frames as the judge's calibration cuts it (``tests/judge_cases.py``); the test
segment never seen by the reference plays the generated video."""

import subprocess

import numpy as np
import pytest

from tests.judge_cases import MEANT_TO_FAIL, balls_clip, fakes, folds, vanish_video
from tests.media import real_clip
from videogen import video_quality as vq

SIZE = 64
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "balls")


def _decode(name: str) -> np.ndarray:
    """A clip center-cropped and scaled to SIZE like the prepare stage; "balls" is the synthetic clip."""
    if name == "balls":
        return balls_clip(size=SIZE)
    cmd = ["ffmpeg", "-v", "error", "-i", str(real_clip(name)), "-vf",
           f"crop=min(iw\\,ih):min(iw\\,ih),scale={SIZE}:{SIZE}:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


@pytest.fixture(scope="module")
def cuts() -> dict:
    """Per clip: the whole clip, the forward fold's train / held-out / test frames and the judge's reference."""
    out = {}
    for name in CLIPS:
        frames = _decode(name)
        _, train, held, test = next(folds(frames))
        ref = vq.reference(train, held, np.concatenate([train, held]), window=len(test))
        out[name] = (frames, train, test, ref)
    return out


@pytest.mark.parametrize("name", CLIPS)
def test_unseen_real_windows_pass_every_check(cuts, name):
    """Real frames the reference never saw pass every check, played once or to and fro over three windows; every
    patch measure sits near 1 and copying near 0."""
    frames, train, test, ref = cuts[name]
    for video in (test, fakes(train, test, frames)["real (to and fro)"]):
        scores = vq.judge(video, window=len(test), ref=ref)
        assert scores["verdict"]["ok"], (name, scores["verdict"]["failed"])
        for measure in ("realism", "spacetime", "completeness"):
            assert all(0.75 <= v <= 1.35 for v in scores[measure]), (measure, scores[measure])
        assert max(scores["copying"]) <= 0.04


@pytest.mark.parametrize("kind", sorted(MEANT_TO_FAIL))
@pytest.mark.parametrize("name", CLIPS)
def test_made_up_failures_fail_on_the_measure_meant_for_them(cuts, name, kind):
    """Frozen, noisy, shuffled, quilted (training patches), replayed and fading videos each fail, and at least one of
    the checks that fails is one meant for that failure (tests/judge_cases.MEANT_TO_FAIL)."""
    frames, train, test, ref = cuts[name]
    scores = vq.judge(fakes(train, test, frames)[kind], window=len(test), ref=ref)
    failed = set(scores["verdict"]["failed"])
    assert failed & MEANT_TO_FAIL[kind], (kind, failed)


def test_moving_objects_that_vanish_fail_completeness(cuts):
    """Discs that leave a still background for good: the windows without them fail "incomplete" (the clip's disc
    patches have no match there), the window with them does not."""
    frames, _, test, ref = cuts["balls"]
    scores = vq.judge(vanish_video(len(frames), len(test)), window=len(test), ref=ref)
    assert scores["completeness"][0] < 1.3 < min(scores["completeness"][1:]), scores["completeness"]
    assert scores["verdict"]["failures"]["incomplete"]["frame"] == len(test)


def test_pasted_training_patches_fail_copying_where_real_frames_do_not(cuts):
    """A video made of training frames blended half-way onto held-out frames keeps real motion but its patches sit
    closer to training patches than real unseen ones ever are: copying is high. The test frames alone: near 0."""
    frames, train, test, ref = cuts["carphone_pristine.mp4"]
    pasted = (0.5 * test.astype(np.float32) + 0.5 * train[-len(test):].astype(np.float32)).round().astype(np.uint8)
    real = vq.judge(test, window=len(test), ref=ref)["copying"][0]
    copied = vq.judge(train[-len(test):], window=len(test), ref=ref)["copying"][0]
    assert real < 0.04 < 0.2 < copied, (real, copied)
    assert vq.judge(pasted, window=len(test), ref=ref)["copying"][0] > real


def test_coherence_is_two_sided(cuts):
    """Warping error: a frozen video scores 0, real frames near 1, boiling noise far above."""
    frames, train, test, ref = cuts["bikes.mp4"]
    made_up = fakes(train, test, frames)
    frozen, noise = (vq.judge(made_up[k], window=len(test), ref=ref)["coherence"] for k in ("frozen", "noise"))
    real = vq.judge(test, window=len(test), ref=ref)["coherence"]
    assert max(frozen) < 0.05 and 0.6 < real[0] < 1.6 and min(noise) > 2.4


def test_a_validation_block_shorter_than_a_space_time_patch_leaves_space_time_unmeasured():
    """Two held-out frames cannot hold a 3-frame space-time patch: space-time realism is None (not checked), every
    other measure is scored (a short clip of a many-video run has such a block)."""
    frames = balls_clip(60)
    scores = vq.judge(frames[40:60], frames[:38], frames[38:40], window=10)
    assert scores["spacetime"] == [None, None]
    assert all(v is not None for v in scores["coarse"] + scores["realism"] + scores["completeness"])
    assert "unreal motion" not in scores["verdict"]["failed"]
