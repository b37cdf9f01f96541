"""videogen.progress: a live bar on a terminal (or VIDEOGEN_PROGRESS=bar), the stages' plain log lines elsewhere (or
VIDEOGEN_PROGRESS=log), for prepare, train and generate."""

from __future__ import annotations

import io
import itertools
import logging
import re
import types

import pytest

from tests.unit.test_generate import _save_dataset, _save_model
from tests.unit.test_train import TINY, write_dataset
from videogen import dataset, progress
from videogen.progress import Progress

# The stages' log lines as they were before videogen.progress (log mode keeps them word for word).
TRAIN_LINE = re.compile(r"^step (\d+)/2 \[main\] gen [\d.]+ \(gan [\d.]+, l1 [\d.]+\) disc [\d.]+ \| [\d.]+ img/s \| "
                        r"ETA \d+m\d\ds$")
GENERATE_LINE = re.compile(r"^frame 3/3, [\d.]+ frames/s \(x1 videos\), ETA 0 s$")
PREPARE_LINE = re.compile(r"^decoded \d+/40 frames \(\d+ frames/s, ETA \d+ s\)$")


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def bar_mode(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "bar")


@pytest.fixture
def log_mode(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "log")


def _messages(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == logging.INFO]


def test_the_mode_follows_the_terminal_unless_the_variable_forces_one(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    assert progress.mode(_Stream(tty=True)) == "bar"
    assert progress.mode(_Stream(tty=False)) == "log"
    closed = io.StringIO()
    closed.close()
    assert progress.mode(closed) == "log"
    for value, stream, expected in (("log", _Stream(tty=True), "log"), ("BAR", _Stream(tty=False), "bar"),
                                    ("auto", _Stream(tty=True), "bar"), ("", _Stream(tty=False), "log")):
        monkeypatch.setenv(progress.ENV_VAR, value)
        assert progress.mode(stream) == expected, value


def test_a_bar_redraws_in_place_with_rate_eta_and_the_postfix(monkeypatch, caplog):
    """On a terminal: carriage-return updates showing done/total, rate and ETA; the caller's line goes onto the bar
    (logged at DEBUG only); other log lines print above the bar; closing restores the logging handlers."""
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    logger = logging.getLogger("videogen.test")
    stream = _Stream(tty=True)
    handlers = list(logging.root.handlers)
    with caplog.at_level(logging.INFO, logger="videogen.test"), \
            Progress(logger, "work", 4, unit="step", stream=stream) as bar:
        assert bar.is_bar and logging.root.handlers != handlers
        for done in range(1, 5):
            bar.update(done)
            bar.log("step %d/4 loss %.1f", done, 0.5, postfix=f"loss {done}")
    assert logging.root.handlers == handlers
    text = stream.getvalue()
    assert "\r" in text and "work: 100%" in text and "4/4" in text
    assert re.search(r"[\d.?]+(step/s|s/step)", text) and "ETA 00:00" in text and "loss 4" in text
    assert not _messages(caplog, "videogen.test")


def test_log_mode_logs_the_callers_lines_and_writes_nothing_else(log_mode, caplog):
    logger = logging.getLogger("videogen.test")
    stream = _Stream(tty=True)
    with caplog.at_level(logging.INFO, logger="videogen.test"), \
            Progress(logger, "work", 2, unit="step", stream=stream) as bar:
        assert not bar.is_bar
        for done in (1, 2):
            bar.update(done)
            bar.log("step %d/2", done, postfix="ignored")
    assert stream.getvalue() == ""
    assert _messages(caplog, "videogen.test") == ["step 1/2", "step 2/2"]


def test_iterate_counts_items_and_closes_the_bar_when_the_loop_is_left(bar_mode):
    stream = io.StringIO()
    handlers = list(logging.root.handlers)
    bar = Progress(logging.getLogger("videogen.test"), "items", None, unit="item", stream=stream)
    for item in bar.iterate(itertools.count()):
        if item == 3:
            break
    del item
    assert bar.bar is None and logging.root.handlers == handlers  # the generator was closed with the loop
    assert "items: 3" in stream.getvalue()  # no total: count and rate, no ETA


# --------------------------------------------------------------------------------------------------------- stages
def test_train_shows_a_bar_with_steps_rate_eta_and_losses(bar_mode, tmp_path, capsys, caplog):
    from videogen.train import TrainSettings, train

    with caplog.at_level(logging.INFO, logger="videogen.train"):
        train(write_dataset(tmp_path / "data"), tmp_path / "model", TrainSettings(max_steps=2, **TINY))
    err = capsys.readouterr().err
    assert "\r" in err and re.search(r"train: 100%\|.*\| 2/2 \[.*(step/s|s/step), ETA 00:00, main \| gen [\d.]+ "
                                     r"\(gan [\d.]+, l1 [\d.]+\) disc [\d.]+ \| [\d.]+ img/s\]", err)
    assert not [m for m in _messages(caplog, "videogen.train") if TRAIN_LINE.match(m)]


def test_train_logs_the_same_step_lines_as_before_in_log_mode(log_mode, tmp_path, capsys, caplog):
    from videogen.train import TrainSettings, train

    with caplog.at_level(logging.INFO, logger="videogen.train"):
        train(write_dataset(tmp_path / "data"), tmp_path / "model", TrainSettings(max_steps=2, **TINY))
    steps = [TRAIN_LINE.match(m) for m in _messages(caplog, "videogen.train")]
    assert [int(m.group(1)) for m in steps if m] == [1, 2]
    assert "\r" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def generator_dirs(tmp_path_factory):
    return _save_model(tmp_path_factory.mktemp("model")), _save_dataset(tmp_path_factory.mktemp("dataset"))


def _generate(dirs, out):
    from videogen import generate

    model_dir, dataset_dir = dirs
    return generate.generate(model_dir, out, generate.GenerateSettings(frames=3), dataset_dir=dataset_dir)


def test_generate_shows_a_bar_in_bar_mode_and_its_frame_lines_in_log_mode(generator_dirs, tmp_path, monkeypatch,
                                                                          capsys, caplog):
    monkeypatch.setenv(progress.ENV_VAR, "bar")
    with caplog.at_level(logging.INFO, logger="videogen.generate"):
        _generate(generator_dirs, tmp_path / "bar")
    err = capsys.readouterr().err
    assert "\r" in err and re.search(r"generate: 100%\|.*\| 3/3 \[.*(frame/s|s/frame), ETA 00:00, x1 videos\]", err)
    assert not [m for m in _messages(caplog, "videogen.generate") if GENERATE_LINE.match(m)]
    caplog.clear()
    monkeypatch.setenv(progress.ENV_VAR, "log")
    with caplog.at_level(logging.INFO, logger="videogen.generate"):
        _generate(generator_dirs, tmp_path / "log")
    assert [m for m in _messages(caplog, "videogen.generate") if GENERATE_LINE.match(m)]
    assert "\r" not in capsys.readouterr().err


def test_prepare_shows_a_bar_in_bar_mode_and_its_decode_lines_in_log_mode(synthetic_video, tmp_path, monkeypatch,
                                                                          capsys, caplog):
    settings = dataset.PrepareSettings(image_size=64)
    monkeypatch.setenv(progress.ENV_VAR, "bar")
    dataset.prepare(synthetic_video, tmp_path / "bar", settings)
    err = capsys.readouterr().err
    assert "\r" in err and re.search(r"prepare: 100%\|.*\| 40/40 \[.*(frame/s|s/frame), ETA 00:00\]", err)
    # Log mode: a decode line every 5 s, as before; a clock that moves 6 s per reading makes one due at each block.
    clock = itertools.count(step=6.0)
    monkeypatch.setattr(dataset, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setenv(progress.ENV_VAR, "log")
    with caplog.at_level(logging.INFO, logger="videogen.prepare"):
        dataset.prepare(synthetic_video, tmp_path / "log", settings)
    assert [m for m in _messages(caplog, "videogen.prepare") if PREPARE_LINE.match(m)]
    assert "\r" not in capsys.readouterr().err


_PTY_CHILD = """
import logging, time
from videogen.progress import Progress
bar = Progress(logging.getLogger("videogen.pty"), "train", 50, unit="step")
for i in range(1, 51):
    bar.update(i)
    bar.log("step %d", i, postfix=f"main | gen 2.1234 (gan 0.7123, l1 0.0312) | step {i}")
    time.sleep(0.002)
bar.close()
"""


def _run_under_pty(columns: int) -> str:
    """Run a Progress in a child whose stdin/stdout/stderr are a real pseudo-terminal ``columns`` wide; its output."""
    fcntl, pty, termios = (pytest.importorskip(m) for m in ("fcntl", "pty", "termios"))
    import os
    import struct
    import subprocess
    import sys

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, progress.ENV_VAR: "auto"}
    child = subprocess.Popen([sys.executable, "-c", _PTY_CHILD], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert child.wait(timeout=60) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.parametrize("columns,width", [(0, progress.DEFAULT_COLUMNS), (120, 120)])
def test_a_real_terminal_of_0_or_120_columns_gets_whole_bar_lines_with_a_visible_bar(columns, width):
    """A pseudo-terminal that reports 0 columns (script, some CI runners, kubectl exec) used to get a bar one cell wide
    with the end of its line cut off; it now gets a bar of the default width, like a 120-column terminal."""
    drawn = [line.strip("\r\n") for line in re.split(r"\r", _run_under_pty(columns)) if line.strip()]
    last = drawn[-1]
    assert last.startswith("train: 100%|") and "50/50" in last and last.endswith("| step 50]"), drawn[-3:]
    assert len(last) <= width
    bar = last.split("|")[1]
    assert len(bar) >= 5 and set(bar) == {"█"}, last
