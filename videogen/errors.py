"""The project's own error types.

A :class:`VideogenError` is a user error: its message is one line that says what is wrong and what to do. The CLI
prints it as ``videogen: error: <message>`` and exits with status 2; KFP components let it propagate so the task fails
with the same line. Anything else is a bug and keeps its traceback.
"""

import contextlib
import sys


class VideogenError(Exception):
    """A problem the user can fix. ``str(error)`` is a single line: what is wrong, then what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(VideogenError):
    """The input (a video, an image, a dataset or model directory, a flag value) is not usable."""


class StorageError(VideogenError):
    """Object storage or a URL could not be read or written (after retries)."""


class WorkDirBusyError(VideogenError):
    """Another run holds the lock on the same work directory."""


@contextlib.contextmanager
def exit_on_user_error(prog: str = "videogen"):
    """Turn a :class:`VideogenError` into one line on stderr and exit status 2 (no traceback); let bugs through.

    Used by the CLI and by the KFP component wrappers, so a failed task shows the same line as the CLI.
    """
    try:
        yield
    except VideogenError as error:
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
