"""Each clip's prepare cache follows that clip's content: `videogen.storage.object_identity` changes when the object at
a URI is overwritten with other bytes and stays while it is not; the list-videos step gives every clip its own identity
(`videogen.sources.clip_items`), which the compiled pipeline hands to that clip's prepare task (so it is part of KFP's
cache key of that task alone); the run's ``video_identity`` parameter only goes before it."""

from __future__ import annotations

import http.server
import logging
import os
import threading
from pathlib import Path

import pytest
import yaml

from pipeline.config import ClusterConfig
from pipeline.pipeline import compile_pipeline
from tests.s3server import LOOPBACK
from videogen import sources, storage
from videogen.errors import StorageError

# The shared S3 server fixtures (tests.s3server), used by name below.


@pytest.fixture
def client(s3_server):
    return storage.make_client(s3_server.storage_config())


def _upload(tmp_path: Path, data: bytes, uri: str, client) -> None:
    local = tmp_path / "upload.bin"
    local.write_bytes(data)
    storage.put(local, uri, client=client)


def test_s3_identity_changes_when_the_object_is_overwritten_and_stays_when_not(s3_bucket, client, tmp_path):
    uri = f"s3://{s3_bucket}/videos/in.mp4"
    _upload(tmp_path, b"first video" * 1000, uri, client)
    first = storage.object_identity(uri, client=client)
    assert first.startswith("etag=") and storage.object_identity(uri, client=client) == first
    assert storage.object_identity(f"minio://{s3_bucket}/videos/in.mp4", client=client) == first

    _upload(tmp_path, b"other video" * 1000, uri, client)  # same key, same size, other bytes
    second = storage.object_identity(uri, client=client)
    assert second != first
    _upload(tmp_path, b"other video" * 1000, uri, client)  # the same bytes again: the same content, the same identity
    assert storage.object_identity(uri, client=client) == second


def test_s3_identity_of_a_missing_object_raises_and_the_listing_goes_on_without_one(s3_bucket, client, caplog):
    uri = f"s3://{s3_bucket}/videos/missing.mp4"
    with pytest.raises(StorageError):
        storage.object_identity(uri, client=client)
    with caplog.at_level(logging.WARNING, logger="videogen.sources"):
        assert sources.clip_items(uri, 8, client=client) == [{"video": uri, "identity": ""}]
    assert f"cannot identify the content of {uri}" in caplog.text


def test_local_identity_follows_size_mtime_and_the_first_mib(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"a" * 5000)
    first = storage.object_identity(video)
    assert first == storage.object_identity(str(video)) and "sha256_1mib=" in first
    stat = video.stat()
    video.write_bytes(b"b" * 5000)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the content hash tells them apart
    assert storage.object_identity(video) != first
    assert storage.object_identity(tmp_path / "missing.mp4") == ""


class _HeadHandler(http.server.BaseHTTPRequestHandler):
    headers_by_path = {"/etag.mp4": {"ETag": '"abc123"', "Content-Length": "10"},
                       "/dated.mp4": {"Last-Modified": "Mon, 30 Nov 2026 06:00:00 GMT", "Content-Length": "10"},
                       "/bare.mp4": {}}

    def do_HEAD(self):  # noqa: N802 - http.server API
        if self.path not in self.headers_by_path:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        for name, value in self.headers_by_path[self.path].items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def head_server():
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _HeadHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_identity_from_etag_else_last_modified_and_length_else_empty(head_server):
    assert storage.object_identity(f"{head_server}/etag.mp4") == 'etag="abc123"'
    assert storage.object_identity(f"{head_server}/dated.mp4") == (
        "last-modified=Mon, 30 Nov 2026 06:00:00 GMT;content-length=10")
    assert storage.object_identity(f"{head_server}/bare.mp4") == ""
    with pytest.raises(StorageError, match="404"):
        storage.object_identity(f"{head_server}/missing.mp4")
    assert sources.clip_items(f"{head_server}/missing.mp4", 8)[0]["identity"] == ""


def test_a_given_identity_goes_before_each_clips_own(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"a" * 100)
    (tmp_path / "b.mp4").write_bytes(b"b" * 100)
    items = sources.clip_items(str(tmp_path), 8, video_identity="mine")
    assert [item["identity"] for item in items] == [
        f"mine+{storage.object_identity(tmp_path / name)}" for name in ("a.mp4", "b.mp4")]


def test_the_compiled_pipeline_keys_each_clips_prepare_on_that_clips_identity(tmp_path):
    """KFP's cache key of a task covers its input parameters: list-videos takes the run's video_identity, and in both
    branches (one model for all videos, one model per video) each prepare task takes its video and its identity from
    its own ParallelFor item, never the whole list's."""
    from tests.pipeline.test_compile import _branches, _loop

    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", ClusterConfig()).read_text()))
    listing = spec["root"]["dag"]["tasks"]["list-videos"]["inputs"]["parameters"]
    assert listing["video_identity"] == {"componentInputParameter": "video_identity"}
    for tasks in _branches(spec):
        loop, body = _loop(spec, tasks)  # prepare runs once per listed video, inside the ParallelFor
        item = loop["parameterIterator"]["itemInput"]
        (prepare,) = [task for name, task in body.items() if name.startswith("prepare-dataset")]
        inputs = prepare["inputs"]["parameters"]
        for name, key in (("video", "video"), ("video_identity", "identity")):
            assert inputs[name] == {"componentInputParameter": item,
                                    "parameterExpressionSelector": f'parseJson(string_value)["{key}"]'}, name
        assert "cachingOptions" not in prepare or prepare["cachingOptions"].get("enableCache", True)
    assert "video_identity" in spec["components"]["comp-prepare-dataset"]["inputDefinitions"]["parameters"]


def test_a_changed_clip_changes_only_its_own_key(tmp_path, s3_server, s3_bucket, client, monkeypatch):
    """The list-videos component over an s3 prefix of three clips: each clip has its own identity; overwriting one
    changes that clip's alone (so only it misses prepare's cache), on the object store and in a local folder."""
    from components import list_videos

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    prefix = f"s3://{s3_bucket}/clips/"
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _upload(tmp_path, name.encode() * 1000, prefix + name, client)
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (folder / name).write_bytes(name.encode() * 1000)
    for video, change in ((prefix, lambda: _upload(tmp_path, b"new" * 1000, prefix + "b.mp4", client)),
                          (str(folder), lambda: (folder / "b.mp4").write_bytes(b"new" * 2000))):
        before = list_videos.python_func(video=video, max_videos=8, video_identity="")
        assert [item["video"].rsplit("/", 1)[-1] for item in before] == ["a.mp4", "b.mp4", "c.mp4"]
        assert len({item["identity"] for item in before}) == 3 and all(item["identity"] for item in before)
        change()
        after = list_videos.python_func(video=video, max_videos=8, video_identity="")
        assert [a["identity"] == b["identity"] for a, b in zip(before, after)] == [True, False, True], video
