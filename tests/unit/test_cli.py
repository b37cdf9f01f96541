"""The `videogen` command line: help, underscore-style flags, one-line user errors with exit status 2."""

import subprocess
import sys

import pytest

from pipeline.cli import build_parser


def run_cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.mark.parametrize("command", ["run", "submit", "upload", "prepare", "train", "generate", "evaluate", "fetch", "compile"])
def test_every_command_explains_its_flags_with_defaults(command):
    """`videogen COMMAND -h` works and shows defaults."""
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    text = sub.format_help()
    assert "--output" in text or "--package" in text
    for action in sub._actions:
        if action.option_strings and not action.required and "-h" not in action.option_strings:
            assert "default" in (action.help or ""), f"{command} {action.option_strings[0]} does not state its default"
    if command in ("run", "train"):
        assert "default: 20" in text  # max_epoch


def test_underscore_flags_parse_like_the_dashed_ones():
    """Users of the original training script can paste their flags: --video_url, --max_epoch, --train_ratio,
    --batch_size, --l1_weight, ..."""
    parser = build_parser()
    underscored = parser.parse_args(["run", "--video", "v.mp4", "--video_url", "http://127.0.0.1:1/v.mp4",
                                    "--max_epoch", "3", "--train_ratio", "0.8", "--batch_size", "4",
                                    "--l1_weight", "2.5", "--gan_weight", "0.5", "--frames", "10"])
    dashed = parser.parse_args(["run", "--video", "v.mp4", "--video-url", "http://127.0.0.1:1/v.mp4",
                                "--max-epoch", "3", "--train-ratio", "0.8", "--batch-size", "4",
                                "--l1-weight", "2.5", "--gan-weight", "0.5", "--frames", "10"])
    assert vars(underscored) == vars(dashed)
    assert (underscored.max_epoch, underscored.batch_size, underscored.l1_weight) == (3, 4, 2.5)


def test_a_non_video_input_fails_with_one_line_and_status_2(tmp_path):
    """A text file passed as the video: exit 2, one line on stderr naming the problem, no traceback, no dataset."""
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video\n" * 50)
    proc = run_cli("prepare", "--video", str(bogus), "--output", str(tmp_path / "ds"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videogen: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_run_refuses_a_bad_video_before_any_task_starts(tmp_path):
    """`videogen run` on a missing file: one line, exit 2, and nothing that looks like a result."""
    proc = run_cli("run", "--video", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "g.mp4"),
                   "--work-dir", str(tmp_path / "work"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.mp4" in proc.stderr
    assert not (tmp_path / "g.mp4").exists()


def test_a_usage_error_is_one_line_with_status_2():
    """A missing required flag is reported in one line that points at -h."""
    proc = run_cli("train", "--output", "x")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--dataset" in proc.stderr


def test_bad_node_selector_is_a_user_error(tmp_path):
    """`videogen compile --train-node-selector nonsense` explains the KEY=VALUE form."""
    proc = run_cli("compile", "--output", str(tmp_path / "p.yaml"), "--train-node-selector", "nonsense")
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr


def test_run_takes_the_pixel_limit_and_refuses_larger_frames_before_any_task(tmp_path, synthetic_video):
    """`videogen run --max-pixels` reaches the pre-flight probe (and the prepare task): a 64x64 video over a
    1000-pixel limit is refused in one line naming the size and the limit, before kfp.local starts."""
    proc = run_cli("run", "--video", str(synthetic_video), "--max-pixels", "1000", "--output", str(tmp_path / "g.mp4"),
                   "--work-dir", str(tmp_path / "work"))
    assert proc.returncode == 2
    assert "64x64" in proc.stderr and "1,000 pixels" in proc.stderr
    assert not (tmp_path / "work" / "kfp").exists()


def test_run_refuses_a_bad_setting_before_any_task(tmp_path):
    """A settings value a stage would refuse (a negative step count) stops `videogen run` before kfp.local starts,
    with the stage's one-line message."""
    proc = run_cli("run", "--video", str(tmp_path / "v.mp4"), "--max-steps", "-1", "--work-dir", str(tmp_path / "work"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "max_steps must be >= 0" in proc.stderr
    assert not (tmp_path / "work").exists()
