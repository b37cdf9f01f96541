"""Many videos in one run, end to end through kfp.local at tiny sizes: real ffmpeg, real TensorFlow, the real
ParallelFor of the compiled pipeline function."""

import json
import subprocess
import sys

import pytest

from tests.media import ffprobe_stream, moving_square_frames, write_video

pytestmark = pytest.mark.e2e

NAMES = ("fire.mp4", "traffic.mov", "waves.mp4")


def test_videogen_run_over_a_folder_of_three_clips_trains_one_model_and_reports_each_video(tmp_path):
    """The done-criterion: `videogen run --video DIR` on a folder of three short clips prepares each one (a
    ParallelFor in kfp.local), trains one model on all of them, starts the three rollouts in the three clips, and
    writes the report with one row per clip plus the totals."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for number, name in enumerate(NAMES):
        write_video(clips / name, moving_square_frames(14 + 2 * number, 64, step=number + 1))
    (clips / "README.txt").write_text("not a video")
    output = tmp_path / "out" / "g.mp4"
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--video", str(clips), "--frames", "6",
                           "--num-videos", "3", "--max-steps", "4", "--image-size", "64", "--ngf", "8", "--ndf", "8",
                           "--batch-size", "2", "--output", str(output), "--work-dir", str(work)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert int(ffprobe_stream(output)["nb_read_frames"]) == 6

    (run_dir,) = work.joinpath("kfp").glob("video-generation-*")
    assert len(list(run_dir.glob("**/prepare-dataset*/dataset/dataset.json"))) == 3  # one prepare per clip
    (model,) = run_dir.glob("**/train-model/model/model.json")  # one model for all of them
    assert json.loads(model.read_text())["dataset"]["videos"] == 3
    (generation,) = run_dir.glob("**/generate-frames/generated/generation.json")
    assert json.loads(generation.read_text())["start_videos"] == list(NAMES)

    metrics = json.loads((output.parent / "metrics.json").read_text())
    assert [v["name"] for v in metrics["videos"]] == list(NAMES)
    assert metrics["dataset"]["videos"] == 3
    assert metrics["one_step"]["pairs"] == sum(v["one_step"]["pairs"] for v in metrics["videos"])
    summary = (output.parent / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith(tuple(f"| {n} |" for n in NAMES))]
    assert len(rows) == 3 and "| all 3 videos |" in summary
    report = (output.parent / "report.html").read_text()
    assert "Per video (3 source videos, one model)" in report and all(name in report for name in NAMES)


def test_videogen_run_with_per_video_models_trains_publishes_and_reports_each_clip_on_its_own(tmp_path):
    """--per-video-models over a folder of two clips: the compiled pipeline's Else branch runs (kfp.local), each clip
    gets its own model, video and report, published under the run in the clip's folder; the first clip's video goes
    to --output and the second's beside it."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for number, name in enumerate(NAMES[:2]):
        write_video(clips / name, moving_square_frames(14 + 2 * number, 64, step=number + 1))
    output = tmp_path / "out" / "g.mp4"
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--video", str(clips), "--per-video-models",
                           "--frames", "5", "--max-steps", "2", "--image-size", "64", "--ngf", "8", "--ndf", "8",
                           "--batch-size", "2", "--output", str(output), "--work-dir", str(work)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"video: {output.parent / 'g-traffic.mp4'}" in proc.stdout

    (run_dir,) = work.joinpath("kfp").glob("video-generation-*")
    assert not list(run_dir.glob("**/combine-datasets")) and not list(run_dir.glob("**/train-model/"))
    models = sorted(run_dir.glob("**/train-model-2/model/model.json"))
    assert len(models) == 2 and all(json.loads(m.read_text())["dataset"]["videos"] == 1 for m in models)
    (published,) = work.joinpath("published").iterdir()
    assert sorted(p.name for p in published.iterdir()) == ["fire", "traffic"]
    for clip in ("fire", "traffic"):
        assert int(ffprobe_stream(published / clip / "gen.mp4")["nb_read_frames"]) == 5
        metrics = json.loads((published / clip / "metrics.json").read_text())
        assert metrics["dataset"]["videos"] == 1
    assert output.read_bytes() == (published / "fire" / "gen.mp4").read_bytes()
    assert (output.parent / "g-traffic.mp4").read_bytes() == (published / "traffic" / "gen.mp4").read_bytes()
    assert (output.parent / "report.html").read_bytes() == (published / "fire" / "report.html").read_bytes()
    assert (output.parent / "g-traffic.report.html").exists() and (output.parent / "g-traffic.metrics.json").exists()
    assert not work.joinpath("checkpoints").exists() or not any(work.joinpath("checkpoints").iterdir())
