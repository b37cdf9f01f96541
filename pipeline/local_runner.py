"""Run the pipeline on this machine through kfp.local (no cluster, no Docker).

Reads the video or videos (local paths, s3://, minio:// or http(s)://; a list or a folder / prefix); writes, under ``work_dir``: ``kfp/`` (kfp.local's pipeline
root: every task's artifacts), ``checkpoints/<resume key>/`` (training checkpoints and partial generation, outside
the task outputs, as on a cluster; the key is a hash of the video and the parameters, so the same command run again
after a kill resumes; removed when the run finishes) and ``published/<run id>/`` (gen.mp4 and the report), then
copies the video to ``output`` and the report beside it. With ``per_video_models`` each clip publishes into
``published/<run id>/<clip>/``: the first clip's video goes to ``output`` (its report beside it) and every other
clip's beside it, named after both (``gen-<clip>.mp4``, ``gen-<clip>.report.html``, ...). A lock file keeps two runs
from sharing one work dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from videogen import runs, sources, storage
from videogen.artifacts import CHECKPOINTS_DIR, REPORT_FILE
from videogen.errors import VideogenError, WorkDirBusyError

log = logging.getLogger("videogen.run")

_USER_ERROR = re.compile(r"videogen: error: (.*)")


@dataclass(frozen=True)
class LocalRunResult:
    output: str
    report: str | None
    published_dir: Path
    duration_s: float
    clips: tuple[str, ...] = ()  # per_video_models: the other clips' videos, delivered beside ``output``


@contextlib.contextmanager
def work_dir_lock(work_dir: Path):
    """Hold an exclusive lock on ``work_dir`` for the whole run; a second run on the same dir is refused at once."""
    work_dir.mkdir(parents=True, exist_ok=True)
    handle = open(work_dir / ".videogen.lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirBusyError(
                f"work dir {work_dir} is in use by another videogen run: wait for it or pass another --work-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


class _ErrorLineTee:
    """Passes kfp.local's streamed task logs through and remembers the last ``videogen: error:`` line."""

    def __init__(self, stream):
        self.stream = stream
        self.last_error: str | None = None

    def write(self, text: str) -> int:
        for match in _USER_ERROR.finditer(text):
            self.last_error = match.group(1).strip()
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def run_local(arguments: dict, work_dir: Path, output: str) -> LocalRunResult:
    """Run the compiled pipeline function with ``arguments`` through kfp.local and deliver the video to ``output``.

    Args:
        arguments: pipeline parameters (``video`` required); ``output_root``/``checkpoint_root`` default to the work dir.
        work_dir: where everything of this run lives (locked for the run).
        output: local path or s3:// / minio:// URI for the final mp4; the report goes beside a local output.

    Raises:
        VideogenError: a task failed because of the input (its one-line message), or the work dir is busy.
    """
    work_dir = Path(work_dir).resolve()
    if "python3" in str(work_dir):
        raise VideogenError(f"work dir {work_dir} contains 'python3', which kfp.local rewrites in task arguments: "
                            "pass another --work-dir")
    started = time.monotonic()
    with work_dir_lock(work_dir):
        arguments = _local_arguments(arguments, work_dir)
        checkpoints = runs.checkpoint_uri(arguments["checkpoint_root"], run_id="", resume_key=arguments["resume_key"])
        if not storage.is_remote(checkpoints) and Path(checkpoints).is_dir():
            log.info("checkpoints of an earlier, unfinished run of the same video and parameters found in %s: "
                     "resuming from them", checkpoints)
        published = _run_pipeline(arguments, work_dir)
        if not storage.is_remote(checkpoints):  # finished: a later identical run starts afresh
            shutil.rmtree(checkpoints, ignore_errors=True)
        published_dir = Path(published).parent
        storage.put(Path(published), output)
        report = _deliver_report(published_dir, output)
        clips = _deliver_other_clips(published_dir, output) if arguments.get("per_video_models") else ()
    return LocalRunResult(output=output, report=report, published_dir=published_dir,
                          duration_s=time.monotonic() - started, clips=clips)


def _local_arguments(arguments: dict, work_dir: Path) -> dict:
    """The run's parameters with the local defaults: the resume key from the inputs, locations under the work
    dir."""
    arguments = dict(arguments)
    arguments.setdefault("resume_key", resume_key(arguments))
    videos = sources.list_videos(arguments["video"], int(arguments.get("max_videos") or runs.RunSettings.max_videos))
    if len(videos) > 1 or arguments.get("per_video_models"):  # the clips' names name their results
        arguments["video"] = ",".join(_stage_inputs(videos, work_dir / "inputs" / "videos"))
    elif not storage.is_remote(videos[0]):
        arguments["video"] = str(_stage_input(Path(videos[0]), work_dir / "inputs"))
    arguments.setdefault("output_root", str(work_dir / "published"))
    arguments.setdefault("checkpoint_root", str(work_dir / CHECKPOINTS_DIR))
    return arguments


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables (inherited by the task subprocesses) for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _resolve_artifact_oneof() -> None:
    """Let kfp.local take a ``dsl.OneOf`` of artifacts from whichever branch ran, as it does for parameters.

    The pipeline's model is such a OneOf (the one-node train step or the TrainJob launcher); KFP's backend resolves
    it, but kfp.local (2.17) resolves OneOf for parameters only and refuses more than one artifact selector
    (``get_dag_output_artifacts`` in kfp/local/orchestrator/orchestrator_utils.py: "Expected 1 artifact in
    ArtifactSelectorSpec"). This replaces that method with one that reads a single selector as before and, for
    several, the one branch that produced the artifact (the parameter path's rule: a branch that did not run has no
    output, exactly one must have)."""
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    if getattr(OrchestratorUtils.get_dag_output_artifacts, "resolves_oneof", False):
        return

    def get_dag_output_artifacts(cls, dag_outputs_spec, io_store) -> dict:
        outputs = {}
        for key, spec in dag_outputs_spec.artifacts.items():
            selectors = list(spec.artifact_selectors)
            if len(selectors) == 1:
                outputs[key] = io_store.get_task_output(selectors[0].producer_subtask, selectors[0].output_artifact_key)
                continue
            found = []
            for selector in selectors:
                try:
                    found.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
                except (KeyError, ValueError):  # that branch did not run
                    continue
            if len(found) != 1:
                raise ValueError(f"dsl.OneOf artifact {key!r}: {len(found)} branches produced it, expected exactly 1")
            outputs[key] = found[0]
        return outputs

    get_dag_output_artifacts.resolves_oneof = True
    OrchestratorUtils.get_dag_output_artifacts = classmethod(get_dag_output_artifacts)


def _run_pipeline(arguments: dict, work_dir: Path) -> str:
    """Run the pipeline through kfp.local; return the published video's path. A failed task's own one-line error
    becomes the VideogenError."""
    from kfp import local

    from pipeline.config import ClusterConfig
    from pipeline.pipeline import build_pipeline

    _resolve_artifact_oneof()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work_dir / "kfp"),
               workspace_root=str(work_dir / "workspace"))
    pipeline_func = build_pipeline(ClusterConfig().for_local())
    tee = _ErrorLineTee(sys.stdout)
    try:
        # kfp.local reads each task's output line by line: a progress bar (carriage returns) would arrive as one line
        # at the end, so the tasks log plain lines whatever the user's shell exported.
        with contextlib.redirect_stdout(tee), _environment(VIDEOGEN_PROGRESS="log"):
            task = pipeline_func(**arguments)
    except RuntimeError as error:
        if tee.last_error:
            raise VideogenError(tee.last_error) from None
        raise VideogenError(f"the local pipeline run failed ({_plain(error)}): the task's log above says why") from None
    return str(task.output)


def _deliver_report(published_dir: Path, output: str) -> str | None:
    """Copy the report files beside a local ``output``; return where report.html is (None if it is not)."""
    if storage.is_remote(output):
        return str(published_dir / REPORT_FILE) if (published_dir / REPORT_FILE).exists() else None
    out_dir = Path(output).resolve().parent
    for name in runs.REPORT_NAMES:
        if (published_dir / name).exists():
            storage.put(published_dir / name, str(out_dir / name))
    return str(out_dir / REPORT_FILE) if (out_dir / REPORT_FILE).exists() else None


def _deliver_other_clips(first_dir: Path, output: str) -> tuple[str, ...]:
    """Per-video models: put every clip's video but the first's (``first_dir``, delivered to ``output``) beside
    ``output``, as ``<output name>-<clip>.mp4``, and beside a local output its report files as
    ``<output name>-<clip>.<file>``; returns where the videos went."""
    names = [runs.VIDEO_NAME] + ([] if storage.is_remote(output) else list(runs.REPORT_NAMES))
    delivered = []
    for clip_dir in sorted(d for d in first_dir.parent.iterdir() if d != first_dir and (d / runs.VIDEO_NAME).is_file()):
        for name in names:
            if (clip_dir / name).exists():
                storage.put(clip_dir / name, runs.clip_output(output, clip_dir.name, name))
        delivered.append(runs.clip_output(output, clip_dir.name, runs.VIDEO_NAME))
    if delivered:
        log.info("one model per video: %s is clip %s's video; the other clips' are %s", output, first_dir.name,
                 ", ".join(delivered))
    return tuple(delivered)


def resume_key(arguments: dict) -> str:
    """A name for this run's checkpoints that is the same when the same command runs again: a hash of the pipeline
    parameters (output locations left out) and of the input video (its path, size and modification time, or its URI).
    A killed ``videogen run`` started again with the same arguments therefore resumes training and generation."""
    import hashlib
    import json

    ignored = {"output_root", "checkpoint_root", "resume_key", "video_identity"}
    identity = {name: value for name, value in sorted(arguments.items()) if name not in ignored}
    video = str(arguments["video"])
    if "://" not in video and Path(video).is_file():
        stat = Path(video).stat()
        identity["video"] = [str(Path(video).resolve()), stat.st_size, stat.st_mtime_ns]
    elif len(sources.split_items(video)) > 1 or sources.is_prefix(video):  # several videos: their contents count
        with contextlib.suppress(VideogenError):
            identity["video"] = [video, sources.sources_identity(video, int(arguments.get("max_videos") or
                                                                           runs.RunSettings.max_videos))]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return f"local-{digest[:16]}"


def _stage_input(video: Path, inputs_dir: Path) -> Path:
    """Link (or copy) a local input video into the work dir under a plain name.

    kfp.local's SubprocessRunner replaces the text ``python3`` in every element of a task's command line with the
    interpreter's path (kfp/local/subprocess_task_handler.py), which corrupts any path argument containing it, e.g.
    ``.../lib/python3.11/...``. A staged copy under the work dir has a name we control.
    """
    inputs_dir.mkdir(parents=True, exist_ok=True)
    staged = inputs_dir / ("input" + "".join(c for c in video.suffix.lower() if c.isalnum() or c == "."))
    staged.unlink(missing_ok=True)
    try:
        os.link(video.resolve(), staged)
    except OSError:
        shutil.copyfile(video, staged)
    return staged


def _stage_inputs(videos: list[str], inputs_dir: Path) -> list[str]:
    """Stage the local videos of a list (:func:`_stage_input`, for the same reason) into ``inputs_dir`` (emptied
    first), each under its own file name made safe (only letters, digits, ``.``, ``_``, ``-``; numbered when two
    clash), so the report names them as the user did; remote ones stay URIs."""
    shutil.rmtree(inputs_dir, ignore_errors=True)
    inputs_dir.mkdir(parents=True)
    staged = []
    for number, video in enumerate(videos):
        if storage.is_remote(video):
            staged.append(video)
            continue
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(video).name).replace("python3", "python_3").lstrip(".") or "video"
        if (inputs_dir / name).exists():
            name = f"{number}-{name}"
        path = inputs_dir / name
        try:
            os.link(Path(video).resolve(), path)
        except OSError:
            shutil.copyfile(video, path)
        staged.append(str(path))
    return staged


def _plain(error: Exception) -> str:
    """kfp.local colours its messages; strip the escape codes for a one-line error."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error))
