"""Local runs: one run per work dir (a lock), separate work dirs stay apart."""

import subprocess
import sys
import time

import pytest

from pipeline.local_runner import work_dir_lock
from videogen.errors import WorkDirBusyError


def test_second_run_on_the_same_work_dir_is_refused_at_once(tmp_path):
    """While one process holds the work dir, another is refused with a one-line error instead of mixing files."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, pathlib; from pipeline.local_runner import work_dir_lock\n"
        f"with work_dir_lock(pathlib.Path({str(tmp_path / 'work')!r})):\n"
        "    print('locked', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(WorkDirBusyError, match="in use by another videogen run"):
            with work_dir_lock(tmp_path / "work"):
                pass
        assert time.monotonic() - started < 2
        with work_dir_lock(tmp_path / "other-work"):  # another work dir is free
            pass
    finally:
        holder.kill()
        holder.wait()
    with work_dir_lock(tmp_path / "work"):  # released when the holder dies (even by SIGKILL)
        pass
