"""Damaged artifacts between stages: every file a stage reads from an earlier one (the dataset, the model, the steering
targets, the generated frames) truncated, garbled or swapped for another artifact's file. The stage must refuse it
with one `videogen: error:` line that names the file, exit non-zero, show no traceback, and leave nothing that looks
finished in its output (the file a later stage takes as "done")."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.media import moving_square_frames, write_video
from videogen import cli


def _stage(capsys, *argv: str) -> tuple[int, str]:
    """Run one library stage command in this process: its exit status and its stderr."""
    capsys.readouterr()
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def pipeline_artifacts(tmp_path_factory):
    """One small real run of the stages: dataset, model (with steering targets), generated frames."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("artifacts")
    video = write_video(root / "clip.mp4", moving_square_frames(40, 64))
    run = [sys.executable, "-m", "videogen"]
    for argv in (["prepare", "--video", str(video), "--output", str(root / "dataset"), "--image-size", "64"],
                 ["train", "--dataset", str(root / "dataset"), "--output", str(root / "model"), "--max-steps", "2",
                  "--batch-size", "2", "--ngf", "4", "--ndf", "4"],
                 ["generate", "--model", str(root / "model"), "--dataset", str(root / "dataset"),
                  "--output", str(root / "gen.mp4"), "--frames-dir", str(root / "generated"), "--frames", "6"]):
        done = subprocess.run(run + argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return root


def _truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _garble(path: Path, other: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(len(data))
    # Where a reader looks first: a .npy header, a zip's central directory at the end, a JSON document's middle.
    spots = {".npy": range(0, 120), ".keras": range(len(data) - 200, len(data)),
             ".npz": range(len(data) - 200, len(data))}.get(path.suffix, range(len(data) // 3, 2 * len(data) // 3))
    for i in rng.choice(list(spots), size=min(40, len(spots)), replace=False):
        data[i] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))


def _swap(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


DAMAGES = {"truncated": _truncate, "garbled": _garble, "swapped": _swap}
# (stage, damaged file, a file of another artifact to swap in, what the stage must not leave behind)
CASES = [
    ("train", "dataset/frames.npy", "generated/frames.npy", "model_out/model.json"),
    ("train", "dataset/dataset.json", "model/model.json", "model_out/model.json"),
    ("generate", "model/generator.keras", "model/steering.npz", "gen_out/generation.json"),
    ("generate", "model/model.json", "dataset/dataset.json", "gen_out/generation.json"),
    ("generate", "model/steering.npz", "model/generator.keras", "gen_out/generation.json"),
    ("generate", "dataset/frames.npy", "generated/frames.npy", "gen_out/generation.json"),
    ("evaluate", "generated/frames.npy", "dataset/frames.npy", "eval_out/metrics.json"),
    ("evaluate", "generated/generation.json", "model/model.json", "eval_out/metrics.json"),
    ("evaluate", "model/model.json", "generated/generation.json", "eval_out/metrics.json"),
]


def _command(stage: str, case: Path) -> list[str]:
    if stage == "train":
        return ["train", "--dataset", str(case / "dataset"), "--output", str(case / "model_out"), "--max-steps", "1",
                "--batch-size", "2", "--ngf", "4", "--ndf", "4"]
    if stage == "generate":
        return ["generate", "--model", str(case / "model"), "--dataset", str(case / "dataset"),
                "--output", str(case / "gen_out.mp4"), "--frames-dir", str(case / "gen_out"), "--frames", "3"]
    return ["evaluate", "--dataset", str(case / "dataset"), "--model", str(case / "model"),
            "--generated", str(case / "generated"), "--output", str(case / "eval_out"), "--num-starts", "2",
            "--control-frames", "0"]


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("stage,damaged,other,finished", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_damaged_artifact_is_refused_in_one_line_naming_the_file(pipeline_artifacts, tmp_path, capsys, stage,
                                                                   damaged, other, finished, damage):
    case = tmp_path / "case"
    shutil.copytree(pipeline_artifacts, case)
    DAMAGES[damage](case / damaged, case / other)
    status, err = _stage(capsys, *_command(stage, case))
    lines = [line for line in err.splitlines() if line.strip()]
    assert status != 0, f"{stage} accepted a {damage} {damaged}: {err[-500:]}"
    assert "Traceback" not in err, err[-2000:]
    assert lines and lines[-1].startswith("videogen: error:"), err[-1000:]
    assert Path(damaged).name in lines[-1], lines[-1]
    assert not (case / finished).exists(), f"{finished} was written although the stage failed"
    if stage == "generate":
        assert not (case / "gen_out.mp4").exists()
