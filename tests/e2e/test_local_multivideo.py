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
    proc = subprocess.run([sys.executable, "-m", "videogen", "run", "--video", str(clips), "--frames", "6",
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
