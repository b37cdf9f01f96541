"""The listing of a run's videos as :func:`videogen.sources.clip_items` reads it: the ``--video`` text (a path, URI,
comma-separated list or prefix) and what an object store lists under an ``s3://`` / ``minio://`` prefix (object
names, ETags, sizes). Both come from the input; the store is a stand-in, so nothing goes over the network (an
``http(s)://`` item's identity is a stand-in too). Local items are kept inside a scratch folder with a few clips."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import atheris

from fuzz import driver
from videogen import sources, storage


@dataclass
class _Object:
    object_name: str
    etag: str = ""
    size: int = 0
    last_modified: datetime.datetime | None = None
    is_dir: bool = False


class _Store:
    """The minio calls :mod:`videogen.storage` makes to list a prefix and identify an object, over ``objects``."""

    def __init__(self, objects: list[_Object]):
        self.objects = objects

    def list_objects(self, bucket: str, prefix: str = "", recursive: bool = False):
        return [o for o in self.objects if o.object_name.startswith(prefix)]

    def stat_object(self, bucket: str, key: str) -> _Object:
        return next((o for o in self.objects if o.object_name == key), _Object(key))


_SANDBOX = None
_CLIPS = ("clips/a.mp4", "clips/b.MOV", "clips/.hidden.mp4", "clips/notes.txt", "clips/sub/c.mkv", "one,two.mp4")


def _sandbox() -> Path:
    """A scratch folder with a few files, made the working directory (local items are relative to it)."""
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = driver.scratch_dir("sources")
        for name in _CLIPS:
            (_SANDBOX / name).parent.mkdir(parents=True, exist_ok=True)
            (_SANDBOX / name).write_bytes(b"\0\0\0\x18ftypmp42")
        os.chdir(_SANDBOX)
        storage._http_identity = lambda url, config: "etag=stand-in"  # no network
    return _SANDBOX


def _outside(video: str) -> bool:
    """Whether an item may name a local place outside the sandbox (absolute, ``..``, ``~``, a ``file:`` URL)."""
    for item in video.split(","):
        text = item.strip()
        if text.lower().startswith("file:") or text.startswith(("/", "~")) or ".." in Path(text).parts:
            return True
    return False


def test_one_input(data: bytes) -> None:
    _sandbox()
    fdp = atheris.FuzzedDataProvider(data)
    max_videos = fdp.ConsumeIntInRange(0, 70)
    video = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
    objects = [_Object(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60)),
                       etag=fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40)), size=fdp.ConsumeInt(4),
                       is_dir=fdp.ConsumeBool())
               for _ in range(fdp.ConsumeIntInRange(0, 12))]
    if _outside(video):
        return
    client = storage.StorageClient(minio=_Store(objects), config=storage.StorageConfig(max_attempts=1))
    with driver.contract():
        items = sources.clip_items(video, max_videos, video_identity="v1", client=client)
        assert 0 < len(items) <= max_videos, items


if __name__ == "__main__":
    driver.main(test_one_input)
