"""What a whole pipeline run takes beyond the stages: its own parameters, and where its results and checkpoints live.

:class:`RunSettings` holds the pipeline parameters that belong to no single stage (``seed`` is here because every
stage takes it). Every other pipeline parameter is a field of a stage's settings; :func:`parameter_field` finds the
field that declares a parameter, so ``videogen run`` takes its flags, defaults and help from there.

The location helpers are the one place that spells a run's layout; the components, the local runner and the KFP
client all call them. This module imports neither kfp nor the ``pipeline`` package, so it also runs inside the
components' containers.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from videogen import storage
from videogen.artifacts import METRICS_FILE, REPORT_FILE, SUMMARY_FILE

VIDEO_NAME = "gen.mp4"
REPORT_NAMES = (REPORT_FILE, SUMMARY_FILE, METRICS_FILE)


@dataclass(frozen=True)
class RunSettings:
    """Parameters of a pipeline run that no single stage owns. Field names are the pipeline parameters and the
    ``videogen run`` flags; ``metadata["local"]`` says what a local run uses when the flag is left out, and
    ``metadata["runner"]`` what both runners (local and cluster) fill in when it is left out."""

    video: str = field(metadata={
        "help": "training video(s): a path, s3://bucket/key, minio://bucket/key or http(s) URL; a comma-separated "
                "list of them; or a folder or prefix ending in / (s3://bucket/clips/) whose video files one model "
                "learns from together"})
    max_videos: int = field(default=64, metadata={
        "help": "refuse a --video list or prefix that names more video files than this"})
    per_video_models: bool = field(default=False, metadata={
        "help": "train one model per video instead of one on all of them: each clip gets its own train, generate, "
                "encode and evaluate, published as {output_root}/{run id}/{clip}/gen.mp4 and its report"})
    seed: int = field(default=0, metadata={
        "help": "random seed of every stage (split start frame, initial weights, data order, dropout)"})
    output_root: str = field(default="minio://mlpipeline/videogen", metadata={
        "help": "where the pipeline publishes results, as {output_root}/{run id}/gen.mp4 (per-video models: "
                "{output_root}/{run id}/{clip}/gen.mp4)",
        "local": "the work dir"})
    checkpoint_root: str = field(default="minio://mlpipeline/videogen-checkpoints", metadata={
        "help": "where training checkpoints live across retries", "local": "the work dir"})
    resume_key: str = field(default="", metadata={
        "help": "name of the checkpoints a run resumes from: a new run with the same key continues training and "
                "generation where an earlier one stopped; empty: the run id, so only retries of the same run resume",
        "local": "a hash of the video and the parameters, so re-running a killed command resumes"})
    video_identity: str = field(default="", metadata={
        "help": "extra text in every clip's prepare cache key (change it to prepare every clip afresh); each clip's "
                "own content identity is always in its key (read by the list-videos step: s3/minio ETag or size + "
                "last-modified, local size + mtime + SHA-256 of the first MiB, http ETag or Last-Modified + "
                "Content-Length), so a clip overwritten at the same URI is prepared afresh and the others hit the "
                "cache",
        "cache_key": "only keys KFP's cache of prepare: the component records it in the dataset's metadata"})


def stage_settings_classes() -> tuple[type, ...]:
    """The settings dataclasses in the order :func:`parameter_field` searches them."""
    from videogen.dataset import PrepareSettings
    from videogen.evaluate import EvaluateSettings
    from videogen.generate import GenerateSettings
    from videogen.train import TrainSettings

    return (RunSettings, PrepareSettings, TrainSettings, GenerateSettings, EvaluateSettings)


def parameter_field(name: str) -> tuple[type, dataclasses.Field]:
    """The settings class and field that declare pipeline parameter ``name`` (the first that has it)."""
    for settings_cls in stage_settings_classes():
        for f in dataclasses.fields(settings_cls):
            if f.name == name:
                return settings_cls, f
    raise LookupError(f"pipeline parameter {name!r} is declared by no settings dataclass")


def publish_uri(output_root: str, run_id: str, name: str = VIDEO_NAME) -> str:
    """Where a run publishes a result file: ``{output_root}/{run_id}/{name}``."""
    return storage.join_uri(output_root, run_id, name)


def checkpoint_uri(checkpoint_root: str, run_id: str, resume_key: str = "", stage: str | None = None) -> str:
    """Where a run keeps checkpoints: ``{checkpoint_root}/{resume_key or run_id}``, and ``/{stage}`` below it.

    Outside the task outputs, so a retried task (same run id) or a new run with the same ``resume_key`` continues.
    """
    parts = [resume_key or run_id] + ([stage] if stage else [])
    return storage.join_uri(checkpoint_root, *parts)


def clip_name(video: str, videos: list[str]) -> str:
    """The folder under the run's results of a per-video model's clip: the file name of ``video`` without its
    extension, reduced to letters, digits, ``.``, ``_`` and ``-``, and numbered (``2-fire``) by its place in the run's
    ``videos`` when an earlier one has the same name."""
    def plain(uri: str) -> str:
        stem = PurePosixPath(str(uri).split("?", 1)[0].rstrip("/")).stem
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "video"

    names = [plain(item) for item in videos]
    place = videos.index(video) if video in videos else len(videos)
    name = plain(video)
    return f"{place}-{name}" if name in names[:place] else name


def clip_scope(video: str, videos: list[str], run_id: str, resume_key: str) -> tuple[str, str]:
    """The run id and resume key a per-video model's stages use for clip ``video``: the run's, each followed by
    ``/{clip name}``, so :func:`publish_uri` gives ``{output_root}/{run id}/{clip}/gen.mp4`` and
    :func:`checkpoint_uri` ``{checkpoint_root}/{resume key or run id}/{clip}/{stage}``: each clip's results and
    checkpoints sit apart, below the run's own. An empty resume key stays empty (the clip's run id then keys them)."""
    name = clip_name(video, videos)
    return f"{run_id}/{name}", f"{resume_key}/{name}" if resume_key else ""


def clip_output(output: str, clip: str, name: str = VIDEO_NAME) -> str:
    """Where clip ``clip``'s published file ``name`` goes beside ``output`` (``out/gen.mp4``): ``out/gen-<clip>.mp4``
    for the video, ``out/gen-<clip>.<name>`` for a report file; never ``output`` itself nor the first clip's report.
    Per-video runs deliver every clip but the first this way, locally and when fetched from a cluster."""
    from pathlib import Path

    folder, _, file_name = output.rpartition("/") if storage.is_remote(output) else (
        str(Path(output).resolve().parent), "", Path(output).name)
    target = f"{Path(file_name).stem}-{clip}" + (Path(output).suffix or ".mp4" if name == VIDEO_NAME
                                                 else f".{name}")
    return storage.join_uri(folder, target)
