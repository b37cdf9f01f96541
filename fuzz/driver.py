"""What every harness shares: the contract, a scratch directory, and the atheris command line.

The contract: a reader either accepts its input or raises the project's user error
(:class:`videogen.errors.VideogenError`: one line, naming the file, saying what to do). Any other exception, a message
that does not name the file, or a file left behind in the reader's directory is a finding: :func:`contract` raises
:class:`Finding` (or lets the exception through), and atheris stops and saves the input. Hangs are caught by
libFuzzer's ``-timeout`` (seconds per input, set by :mod:`fuzz.run`).

A harness module defines ``test_one_input(data: bytes)`` and ends with ``if __name__ == "__main__": main(...)``; it
imports atheris only in :func:`main`, so the tests can call ``test_one_input`` in their own process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from videogen.errors import VideogenError

# Where a harness writes the files it hands a reader: memory-backed where the machine has it.
_SCRATCH_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class Finding(AssertionError):
    """A reader broke the contract in a way that is not an exception of its own (a message, a leftover file)."""


@contextlib.contextmanager
def contract(*names: str, directory: Path | None = None) -> Iterator[None]:
    """Run a reader: a :class:`VideogenError` whose one-line message names one of ``names`` passes; any other
    exception propagates (a finding). With ``directory``, the reader must leave its file list unchanged."""
    before = sorted(os.listdir(directory)) if directory is not None else None
    try:
        yield
    except VideogenError as error:
        message = str(error)
        if "\n" in message or (names and not any(name in message for name in names)):
            raise Finding(f"the user error does not name {' or '.join(names)} on one line: {message!r}") from error
    finally:
        if before is not None and sorted(os.listdir(directory)) != before:
            raise Finding(f"the reader changed {directory}: {before} -> {sorted(os.listdir(directory))}")


def scratch_dir(name: str) -> Path:
    """A fresh directory for one harness process, below ``$VIDEOGEN_FUZZ_SCRATCH`` (:mod:`fuzz.run` makes and removes
    it: libFuzzer ends the process without Python's exit handlers) or else the temporary directory."""
    parent = os.environ.get("VIDEOGEN_FUZZ_SCRATCH") or _SCRATCH_ROOT
    return Path(tempfile.mkdtemp(prefix=f"videogen-fuzz-{name}-", dir=parent))


# Modules whose code is instrumented: the readers, and the library code they hand the bytes to.
INSTRUMENTED = ("videogen", "fuzz", "json", "numpy.lib._format_impl", "numpy.lib._npyio_impl", "zipfile", "fractions")


def instrument(prefixes: tuple[str, ...] = INSTRUMENTED) -> int:
    """Add atheris's coverage instrumentation to every loaded function of the modules ``prefixes`` name (and the
    functions nested in them): :func:`atheris.instrument_func`, which is what ``atheris.instrument_all`` applies to
    everything loaded (https://github.com/google/atheris#python-coverage); a whole-program pass would also walk numpy
    and the standard library. Returns the number of functions instrumented."""
    import gc
    import types

    import atheris

    count = 0
    for obj in gc.get_objects():
        module = getattr(obj, "__module__", None) if isinstance(obj, types.FunctionType) else None
        if module and any(module == p or module.startswith(p + ".") for p in prefixes):
            try:
                atheris.instrument_func(obj)
                count += 1
            except Exception:  # noqa: BLE001 - a function atheris cannot patch runs uninstrumented
                pass
    return count


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with atheris; ``sys.argv`` holds libFuzzer's flags and corpus dirs (or input files to
    run once). The readers' modules are instrumented first, so coverage guides the mutations
    (https://github.com/google/atheris#using-atheris)."""
    import atheris

    print(f"INFO: instrumented {instrument()} functions", file=sys.stderr, flush=True)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
