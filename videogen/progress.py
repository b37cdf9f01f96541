"""Progress of long local work: a live line on a terminal, plain log lines everywhere else.

The stages that run long (prepare, train, generate) count their work through :class:`Progress`:

- ``bar`` mode: one tqdm line on stderr, redrawn in place with carriage returns: done/total, elapsed, rate, ETA and the
  stage's latest figures (losses, images/s). Other log lines print above it.
- ``log`` mode: no bar; the stage's periodic log lines (step/total, rate, ETA, losses) are logged as INFO lines, one
  per interval, as in a KFP pod's log or CI.

The mode is ``$VIDEOGEN_PROGRESS`` when it says ``bar`` or ``log`` (``auto`` or unset: decide), else ``bar`` when
stderr is a terminal and ``log`` when it is not. A terminal that reports no width (0 columns: ``script``, some CI
runners and ``kubectl exec`` sessions) gets a bar of ``DEFAULT_COLUMNS``. ``videogen run`` runs each task in a kfp.local subprocess whose output
is piped, so its tasks log lines. tqdm is imported only for a bar.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
ENV_VAR = "VIDEOGEN_PROGRESS"
MODES = ("bar", "log")
# Known total: "train:  40%|████      | 400/1000 [01:02, 6.41step/s, ETA 01:33, gen 2.1 ...]"
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}, ETA {remaining}{postfix}]"
OPEN_FORMAT = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"  # unknown total: no ETA to give
# Width of the bar on a terminal that reports 0 columns: tqdm would squeeze the bar to one cell and cut the line.
DEFAULT_COLUMNS = 120


def mode(stream: TextIO | None = None) -> str:
    """``"bar"`` or ``"log"``: ``$VIDEOGEN_PROGRESS`` if it names one, else whether ``stream`` (stderr) is a tty."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in MODES:
        return forced
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "log"
    except (AttributeError, ValueError):  # not a file, or a closed one
        return "log"


def columns(stream: TextIO) -> int:
    """The terminal width of ``stream``; 0 where it reports none or is not a terminal."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a file, a closed one, or no terminal behind it
        return 0


class Progress:
    """Work counted towards ``total`` (0 or None: unknown), shown as a live bar or as the caller's log lines.

    ``update(done)`` sets the count (the bar redraws itself at most ten times a second); ``log(message, *args,
    postfix=...)`` is the caller's periodic progress line: an INFO log line in log mode; in bar mode ``postfix``
    (default: the formatted message) goes onto the bar and the line is logged at DEBUG only. Use it as a context
    manager (or call ``close``): closing leaves the bar's last state on screen and gives logging its handlers back.
    """

    def __init__(self, logger: logging.Logger, desc: str, total: int | None, *, unit: str, initial: int = 0,
                 stream: TextIO | None = None):
        self.logger = logger
        self.bar: Any = None
        self._redirect: Any = None
        if mode(stream) == "bar":
            self._open_bar(desc, total, unit, initial, sys.stderr if stream is None else stream)

    def _open_bar(self, desc: str, total: int | None, unit: str, initial: int, stream: TextIO) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        # Log lines to the console go through tqdm.write while the bar is up, so they print above it.
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        width = columns(stream)  # 0: follow nothing, draw DEFAULT_COLUMNS wide
        self.bar = tqdm(total=total or None, initial=initial, desc=desc, unit=unit, file=stream, leave=True,
                        dynamic_ncols=width > 0, ncols=None if width else DEFAULT_COLUMNS,
                        bar_format=BAR_FORMAT if total else OPEN_FORMAT)

    @property
    def is_bar(self) -> bool:
        return self.bar is not None

    def update(self, done: int) -> None:
        if self.bar is not None and done != self.bar.n:
            self.bar.update(done - self.bar.n)

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, counting each once the caller is done with it; closes when they run out or the loop is
        left."""
        try:
            for item in items:
                yield item
                if self.bar is not None:
                    self.bar.update(1)
        finally:
            self.close()

    def log(self, message: str, *args: Any, postfix: str | None = None) -> None:
        if self.bar is None:
            self.logger.info(message, *args)
            return
        self.bar.set_postfix_str(message % args if postfix is None else postfix, refresh=False)
        self.logger.debug(message, *args)

    def close(self) -> None:
        bar, redirect, self.bar, self._redirect = self.bar, self._redirect, None, None
        if bar is not None:
            bar.close()
        if redirect is not None:
            redirect.__exit__(None, None, None)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
