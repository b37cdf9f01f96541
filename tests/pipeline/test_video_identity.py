"""prepare's cache follows the video's content: `videogen.storage.object_identity` changes when the object at a URI is
overwritten with other bytes and stays while it is not; the runners pass it as the ``video_identity`` parameter, which
the compiled pipeline hands to the prepare task (so it is part of KFP's cache key of that task)."""

from __future__ import annotations

import http.server
import logging
import os
import threading
from pathlib import Path

import pytest
import yaml

from pipeline import local_runner
from pipeline.config import ClusterConfig
from pipeline.pipeline import compile_pipeline
from tests.s3server import LOOPBACK
from videogen import runs, storage
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


def test_s3_identity_of_a_missing_object_raises_and_the_runner_goes_on_without_one(s3_bucket, client, caplog):
    uri = f"s3://{s3_bucket}/videos/missing.mp4"
    with pytest.raises(StorageError):
        storage.object_identity(uri, client=client)
    with caplog.at_level(logging.WARNING, logger="videogen.run"):
        assert runs.resolve_video_identity({"video": uri}, client=client)["video_identity"] == ""
    assert "cannot identify the video's content" in caplog.text


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
    assert runs.resolve_video_identity({"video": f"{head_server}/missing.mp4"})["video_identity"] == ""


def test_an_explicit_identity_is_kept():
    assert runs.resolve_video_identity({"video": "s3://videos/in.mp4", "video_identity": "mine"}) == {
        "video": "s3://videos/in.mp4", "video_identity": "mine"}


def test_the_compiled_pipeline_passes_video_identity_into_the_prepare_task(tmp_path):
    """KFP's cache key of a task covers its input parameters: prepare must take video_identity from the run, in both
    branches (one model for all videos, one model per video), through the If/Else and the ParallelFor."""
    from tests.pipeline.test_compile import _branches, _loop

    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", ClusterConfig()).read_text()))
    (group,) = [t for t in spec["root"]["dag"]["tasks"].values()
                if t["componentRef"]["name"].startswith("comp-condition-branches")]
    channel = {"componentInputParameter": "pipelinechannel--video_identity"}
    assert group["inputs"]["parameters"]["pipelinechannel--video_identity"] == {
        "componentInputParameter": "video_identity"}
    for tasks in _branches(spec):
        loop, body = _loop(spec, tasks)  # prepare runs once per listed video, inside the ParallelFor
        assert loop["inputs"]["parameters"]["pipelinechannel--video_identity"] == channel
        (prepare,) = [task for name, task in body.items() if name.startswith("prepare-dataset")]
        assert prepare["inputs"]["parameters"]["video_identity"] == channel
        assert "cachingOptions" not in prepare or prepare["cachingOptions"].get("enableCache", True)
    assert "video_identity" in spec["components"]["comp-prepare-dataset"]["inputDefinitions"]["parameters"]


def test_a_local_run_resolves_the_identity_and_passes_it(tmp_path, monkeypatch, s3_server, s3_bucket, client):
    """kfp.local does not cache, but a local run resolves and passes the identity like a cluster run."""
    passed = []

    def fake_pipeline(arguments, work_dir):
        passed.append(arguments)
        published = Path(arguments["output_root"]) / "run" / runs.VIDEO_NAME
        published.parent.mkdir(parents=True, exist_ok=True)
        published.write_bytes(b"mp4")
        return str(published)

    monkeypatch.setattr(local_runner, "_run_pipeline", fake_pipeline)
    video = tmp_path / "in.mp4"
    video.write_bytes(b"frames" * 100)
    local_runner.run_local({"video": str(video)}, tmp_path / "work", str(tmp_path / "out.mp4"))
    assert passed[-1]["video_identity"] == storage.object_identity(video) != ""

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{s3_bucket}/in.mp4"
    _upload(tmp_path, b"frames" * 100, uri, client)
    local_runner.run_local({"video": uri}, tmp_path / "work", str(tmp_path / "out.mp4"))
    assert passed[-1]["video_identity"] == storage.object_identity(uri, client=client) != ""
    local_runner.run_local({"video": uri, "video_identity": "mine"}, tmp_path / "work", str(tmp_path / "out.mp4"))
    assert passed[-1]["video_identity"] == "mine"
