"""The videos of a run: ``video`` names one video, a comma-separated list of them, or a prefix that holds several.

- one video: a local file, ``s3://bucket/key``, ``minio://bucket/key`` or an http(s) URL, as before;
- a list: ``a.mp4,b.mp4`` or ``s3://b/x.mp4,s3://b/y.mp4`` (each item may itself be a prefix);
- a prefix: a local folder, or an object-store prefix ending in ``/`` (``s3://bucket/clips/``, ``minio://...``):
  every file below it with a video extension (:data:`VIDEO_EXTENSIONS`), hidden names (``.``) skipped, sorted.

:func:`list_videos` expands the text into the files, bounded by ``max_videos``; an empty or unreadable prefix is a
one-line :class:`videogen.errors.InputError` (or :class:`StorageError`). Each file is then checked by the prepare
stage as any single video is (probe, pixel bound, decode timeouts). :func:`clip_items` gives each file with its own
content identity (the pipeline's ParallelFor items: each clip's prepare is cached on its own); :func:`sources_identity`
identifies the whole list (a local run's resume key). Reads only listings and object metadata; writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from videogen import storage
from videogen.errors import InputError, StorageError

log = logging.getLogger("videogen.sources")

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".ts", ".gif")


def is_prefix(item: str) -> bool:
    """A local folder, or an object-store URI that ends in ``/`` or names a whole bucket."""
    ref = storage.parse_uri(item)
    if ref.kind == "local":
        return _local(ref.path, Path.is_dir)
    return ref.kind == "s3" and (not ref.key or ref.key.endswith("/"))


def _local(path: Path, test) -> bool:
    """``test(path)`` (``Path.is_dir``, ``Path.exists``) for a local item; a name the system cannot look up (a NUL
    character, too long) is a one-line error naming it."""
    try:
        return test(path)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InputError(f"--video names {str(path)[:60]!r}{'...' if len(str(path)) > 60 else ''}, which is not a "
                         f"usable path ({reason}): pass a video file, a folder, or an s3:// prefix") from None


def split_items(video: str) -> list[str]:
    """The comma-separated items of ``video`` (a local file whose name has a comma stays one item)."""
    text = str(video).strip()
    if "," not in text or (storage.parse_uri(text).kind == "local" and _local(Path(text), Path.exists)):
        return [text] if text else []
    return [item.strip() for item in text.split(",") if item.strip()]


def _list_prefix(prefix: str, client: storage.StorageClient | None) -> list[str]:
    """The video files below ``prefix``, as URIs (or paths), sorted; refuses an empty or unreadable prefix."""
    ref = storage.parse_uri(prefix)
    try:
        names = storage.list_dir(prefix, client=client)
    except OSError as error:
        raise InputError(f"cannot read the folder {prefix} ({error.strerror or error}): check it exists and is "
                         f"readable") from None
    visible = [n for n in names if not any(part.startswith(".") for part in n.split("/"))]
    videos = sorted(n for n in visible if Path(n).suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise InputError(f"no readable video files under {prefix} ({len(visible)} other file(s); looked for "
                         f"{', '.join(VIDEO_EXTENSIONS)}): put clips there, check its permissions, or pass a "
                         f"video file")
    if len(videos) < len(visible):
        log.info("%s: %d video file(s), %d other file(s) skipped", prefix, len(videos), len(visible) - len(videos))
    if ref.kind == "local":
        return [str(ref.path / n) for n in videos]
    return [storage.join_uri(prefix, n) for n in videos]


def list_videos(video: str, max_videos: int, client: storage.StorageClient | None = None) -> list[str]:
    """The video files ``video`` names (see the module docstring), each once, in the order given (a prefix's files
    sorted by name).

    Raises:
        InputError: nothing named, an empty prefix, an unreadable folder, or more than ``max_videos`` files.
        videogen.errors.StorageError: an object-store prefix could not be listed (missing bucket, rejected
            credentials).
    """
    if max_videos < 1:
        raise InputError(f"--max-videos {max_videos} must be at least 1")
    items = split_items(video)
    if not items:
        raise InputError("--video is empty: pass a video file, a comma-separated list of them, or a folder / "
                         "s3:// prefix of clips")
    found: list[str] = []
    for item in items:
        for path in (_list_prefix(item, client) if is_prefix(item) else [item]):
            if path not in found:
                found.append(path)
            if len(found) > max_videos:
                raise InputError(f"{video} names more than --max-videos {max_videos} videos: raise --max-videos or "
                                 f"pass fewer (a narrower prefix or a shorter list)")
    return found


def clip_items(video: str, max_videos: int, video_identity: str = "",
               client: storage.StorageClient | None = None) -> list[dict[str, str]]:
    """The videos ``video`` names (:func:`list_videos`), each as ``{"video": uri, "identity": ...}``.

    ``identity`` is the clip's own :func:`videogen.storage.object_identity`, after ``video_identity`` and a ``+`` when
    one is given. The pipeline hands it to that clip's prepare task, whose KFP cache key covers it: a clip overwritten
    at its URI is prepared afresh while the other clips of the run hit the cache. A clip whose identity cannot be read
    (the store refuses a HEAD request) keys on its URI alone, with a warning.
    """
    items = []
    for uri in list_videos(video, max_videos, client=client):
        try:
            identity = storage.object_identity(uri, client=client)
        except StorageError as error:
            log.warning("cannot identify the content of %s (%s): a cached dataset of an earlier video at the same "
                        "URI may be reused; pass --video-identity to force a fresh one", uri, error)
            identity = ""
        items.append({"video": uri, "identity": f"{video_identity}+{identity}" if video_identity else identity})
    return items


def sources_identity(video: str, max_videos: int, client: storage.StorageClient | None = None) -> str:
    """:func:`videogen.storage.object_identity` of the one video ``video`` names, or for several a digest of each
    file's name and identity, so adding, removing or changing any clip changes it."""
    videos = list_videos(video, max_videos, client=client)
    if len(videos) == 1:
        return storage.object_identity(videos[0], client=client)
    lines = [f"{uri}={storage.object_identity(uri, client=client)}" for uri in videos]
    return "videos=" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]
