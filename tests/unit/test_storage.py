"""videogen.storage against a real S3 server (moto on 127.0.0.1, with IAM auth on) driven by the real minio client,
and http(s) downloads from a local http.server thread. No mocks."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.s3server import LOOPBACK
from videogen import storage
from videogen.errors import StorageError

# The shared S3 server fixtures (tests.s3server), used by name below.

MB = 1000 * 1000


@pytest.fixture
def client(s3_server):
    return storage.make_client(s3_server.storage_config())


@pytest.fixture
def big_file(tmp_path):
    """12 MB of random bytes: three 5 MiB multipart parts."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MB + 321))
    return path


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------------ URIs and config
def test_parse_uri_kinds_and_minio_scheme_is_s3():
    assert storage.parse_uri("s3://videos/in/a.mp4").bucket == "videos"
    minio = storage.parse_uri("minio://mlpipeline/v2/x")
    assert (minio.kind, minio.bucket, minio.key) == ("s3", "mlpipeline", "v2/x")
    assert storage.parse_uri("https://example.com/v.mp4").kind == "http"
    assert storage.parse_uri("/tmp/x.mp4").path == Path("/tmp/x.mp4")
    assert storage.parse_uri("file:///tmp/a%20b.mp4").path == Path("/tmp/a b.mp4")
    assert [storage.is_remote(u) for u in ("s3://b1b/k", "minio://b1b/k", "http://h/x", "x.mp4", Path("y"))] == [
        True, True, True, False, False]
    with pytest.raises(StorageError, match="not a valid bucket name"):
        storage.parse_uri("s3://A_/key")
    with pytest.raises(StorageError, match="unsupported location scheme"):
        storage.parse_uri("gs://bucket/key")


def test_join_uri_single_slashes():
    assert storage.join_uri("minio://mlpipeline/videogen/", "run-1", "gen.mp4") == "minio://mlpipeline/videogen/run-1/gen.mp4"
    assert storage.join_uri("/tmp/out", "run-1", "gen.mp4") == str(Path("/tmp/out/run-1/gen.mp4"))


def test_config_from_env_precedence_and_repr_hides_credentials():
    env = {"AWS_ENDPOINT_URL": "http://generic:9000", "AWS_ENDPOINT_URL_S3": "https://s3only:9000",
           "AWS_ACCESS_KEY_ID": "AKIDVISIBLE", "AWS_SECRET_ACCESS_KEY": "sup3r-s3cret-value", "AWS_REGION": "eu-west-1"}
    config = storage.StorageConfig.from_env(env=env)
    assert config.endpoint == "https://s3only:9000" and config.region == "eu-west-1"
    assert storage.StorageConfig.from_env(endpoint="http://flag:1", env=env).endpoint == "http://flag:1"
    assert storage.StorageConfig.from_env(env={}).endpoint == storage.DEFAULT_ENDPOINT
    for text in (repr(config), str(config), repr(storage.make_client(config)), str(vars(config))):
        assert "sup3r-s3cret-value" not in text
    assert config.secret_key.reveal() == "sup3r-s3cret-value"
    client = storage.make_client(config)
    assert client.minio._base_url.is_https  # https endpoint -> TLS
    assert not storage.make_client(storage.StorageConfig(endpoint="http://h:9000")).minio._base_url.is_https


def test_endpoint_with_credentials_or_path_is_refused_without_echoing_them():
    with pytest.raises(StorageError) as info:
        storage.make_client(storage.StorageConfig(endpoint="http://user:hunter2pass@h:9000"))
    assert "hunter2pass" not in str(info.value)
    with pytest.raises(StorageError, match="has a path"):
        storage.make_client(storage.StorageConfig(endpoint="http://h:9000/minio"))


# ------------------------------------------------------------------------------------------------ S3 round trips
def test_round_trip_over_multipart_threshold_with_s3_and_minio_schemes(s3_server, s3_bucket, client, big_file,
                                                                        tmp_path):
    storage.put(big_file, f"s3://{s3_bucket}/in/big.bin", client=client)
    stat = s3_server.minio().stat_object(s3_bucket, "in/big.bin")
    assert stat.size == big_file.stat().st_size
    assert stat.etag.strip('"').endswith("-3"), "12 MB with 5 MiB parts must go up as a 3-part multipart upload"
    assert s3_server.pending_uploads(s3_bucket, "in/big.bin") == []

    out_dir = tmp_path / "out"
    got = storage.fetch(f"minio://{s3_bucket}/in/big.bin", out_dir / "copy.bin", client=client)
    assert got == out_dir / "copy.bin"
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(big_file.read_bytes()).digest()
    assert _no_temp_files(out_dir)

    storage.put(big_file, f"minio://{s3_bucket}/in/again.bin", client=client)
    assert storage.fetch(f"s3://{s3_bucket}/in/again.bin", out_dir, client=client).read_bytes() == \
        big_file.read_bytes()


def test_without_a_client_the_standard_environment_variables_are_used(s3_server, s3_bucket, tmp_path, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    source = tmp_path / "in.mp4"
    source.write_bytes(b"video" * 100)
    storage.put(source, f"s3://{s3_bucket}/in.mp4")
    assert storage.fetch(f"s3://{s3_bucket}/in.mp4", tmp_path / "back.mp4").read_bytes() == source.read_bytes()


def test_small_file_single_part_md5_checked(s3_server, s3_bucket, client, tmp_path):
    small = tmp_path / "small.mp4"
    small.write_bytes(b"\x00\x01" * 1000)
    storage.put(small, f"s3://{s3_bucket}/small.mp4", client=client)
    stat = s3_server.minio().stat_object(s3_bucket, "small.mp4")
    assert stat.etag.strip('"') == hashlib.md5(small.read_bytes()).hexdigest()
    assert stat.content_type == "video/mp4"
    assert storage.fetch(f"s3://{s3_bucket}/small.mp4", tmp_path / "back.mp4", client=client).read_bytes() == \
        small.read_bytes()


def test_local_paths_copy_through_temp_and_rename(tmp_path, big_file):
    dest = tmp_path / "sub" / "dir" / "copy.bin"
    assert storage.put(big_file, str(dest)) == str(dest)
    assert dest.read_bytes() == big_file.read_bytes()
    assert storage.fetch(str(dest), tmp_path / "again.bin").read_bytes() == big_file.read_bytes()
    assert _no_temp_files(dest.parent)
    with pytest.raises(StorageError, match="does not exist"):
        storage.fetch(str(tmp_path / "missing.mp4"), tmp_path / "x.mp4")


def test_delivered_files_get_the_permissions_of_a_plain_write(tmp_path, big_file, monkeypatch):
    """The temporary file behind the atomic rename is made 0600 by mkstemp; the delivered file (e.g. gen.mp4) gets
    0666 minus the umask like any file the user writes, so a web server or a colleague can read it."""
    old = os.umask(0o022)
    try:
        dest = storage.put(big_file, str(tmp_path / "out" / "gen.mp4"))
    finally:
        os.umask(old)
    assert os.stat(dest).st_mode & 0o777 == 0o644


def test_missing_bucket_is_one_clear_line(s3_server, client, tmp_path, big_file):
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.fetch("s3://no-such-bucket/video.mp4", tmp_path / "v.mp4", client=client)
    message = str(info.value)
    assert "bucket 'no-such-bucket' does not exist" in message and s3_server.endpoint in message
    assert "create it" in message and "\n" not in message
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist.*create it"):
        storage.put(big_file, "minio://no-such-bucket/out/gen.mp4", client=client)
    assert time.monotonic() - started < 5, "a missing bucket must fail fast, not after retries"
    assert not (tmp_path / "v.mp4").exists()


def test_missing_key_is_one_clear_line_and_leaves_no_file(s3_bucket, client, tmp_path):
    with pytest.raises(StorageError) as info:
        storage.fetch(f"s3://{s3_bucket}/videos/missing.mp4", tmp_path / "v.mp4", client=client)
    assert str(info.value) == (f"s3://{s3_bucket}/videos/missing.mp4 does not exist at {client.endpoint}: "
                               f"check the bucket and the key")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which", ["secret_key", "access_key"])
def test_wrong_credentials_fail_fast_without_showing_the_secret(s3_server, s3_bucket, tmp_path, big_file, which,
                                                                 caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "WrongSecretValue0123456789abcdefghijklmn"
    config = s3_server.storage_config(**{which: wrong})
    client = storage.make_client(config)
    started = time.monotonic()
    for call in (lambda: storage.put(big_file, f"s3://{s3_bucket}/x.bin", client=client),
                 lambda: storage.fetch(f"s3://{s3_bucket}/x.bin", tmp_path / "x.bin", client=client)):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert "credentials rejected by" in message and "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message
        assert wrong not in message and s3_server.secret_key not in message
    assert time.monotonic() - started < 5
    assert wrong not in caplog.text and s3_server.secret_key not in caplog.text
    assert not s3_server.object_exists(s3_bucket, "x.bin")


# ------------------------------------------------------------------------------------------------ checkpoints
def _checkpoint_dir(root: Path) -> Path:
    root.mkdir()
    (root / "ckpt-2.index").write_bytes(b"index")
    (root / "ckpt-2.data-00000-of-00001").write_bytes(os.urandom(200_000))
    (root / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    (root / "logs").mkdir()
    (root / "logs" / "events.out").write_bytes(b"ev")
    return root


def _uploaded(caplog) -> list[str]:
    """Destinations of the "uploaded <file> (<size>) to <uri> in <t> s" lines, in upload order."""
    return [r.getMessage().split(" to ")[1].rsplit(" in ", 1)[0] for r in caplog.records
            if r.getMessage().startswith("uploaded ")]


def test_checkpoint_dir_mirror_round_trip_state_file_last(s3_bucket, client, tmp_path, caplog):
    source = _checkpoint_dir(tmp_path / "ckpt")
    uri = f"minio://{s3_bucket}/run-1/train/checkpoints"
    caplog.set_level(logging.INFO, logger="videogen.storage")
    assert storage.upload_dir(source, uri, client=client) == 4
    assert _uploaded(caplog) == [f"{uri}/{name}" for name in (
        "ckpt-2.data-00000-of-00001", "ckpt-2.index", "logs/events.out", "checkpoint")]

    caplog.clear()
    assert storage.upload_dir(source, uri, files=["ckpt-2.index", "checkpoint"], client=client) == 2
    assert _uploaded(caplog) == [f"{uri}/ckpt-2.index", f"{uri}/checkpoint"]

    restored = tmp_path / "restored"
    assert storage.download_dir(uri, restored, client=client) == 4
    for path in source.rglob("*"):
        if path.is_file():
            assert (restored / path.relative_to(source)).read_bytes() == path.read_bytes()
    assert storage.download_dir(f"s3://{s3_bucket}/run-2/train/checkpoints", tmp_path / "empty", client=client) == 0


def test_checkpoint_dir_mirror_works_for_local_paths(tmp_path):
    source = _checkpoint_dir(tmp_path / "ckpt")
    assert storage.upload_dir(source, str(tmp_path / "mirror")) == 4
    assert storage.download_dir(str(tmp_path / "mirror"), tmp_path / "back") == 4
    assert (tmp_path / "back" / "logs" / "events.out").read_bytes() == b"ev"
    assert storage.download_dir(str(tmp_path / "nothing-yet"), tmp_path / "none") == 0


def test_download_dir_refuses_object_names_that_escape_the_directory(s3_server, s3_bucket, client, tmp_path):
    import boto3  # minio refuses to write such a key; another S3 client does not

    boto3.client("s3", endpoint_url=s3_server.endpoint, region_name=s3_server.region,
                 aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key,
                 ).put_object(Bucket=s3_bucket, Key="ckpt/../../evil", Body=b"x")
    names = [o.object_name for o in s3_server.minio().list_objects(s3_bucket, prefix="ckpt/", recursive=True)]
    assert "ckpt/../../evil" in names
    with pytest.raises(StorageError, match="outside"):
        storage.download_dir(f"s3://{s3_bucket}/ckpt", tmp_path / "a" / "ckpt", client=client)
    assert not (tmp_path / "evil").exists()


# ------------------------------------------------------------------------------------------------ http(s)
class _Handler(http.server.BaseHTTPRequestHandler):
    payload = os.urandom(300_000)

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path.startswith("/video.mp4"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/video.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_server():
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """A socket that completes TCP handshakes (kernel backlog) but never reads or answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(16)
    yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    sock.close()


def test_http_download_200_and_redirect(http_server, tmp_path):
    got = storage.fetch(f"{http_server}/video.mp4", tmp_path / "v.mp4")
    assert got.read_bytes() == _Handler.payload
    assert storage.fetch(f"{http_server}/redirect", tmp_path / "r.mp4").read_bytes() == _Handler.payload
    assert _no_temp_files(tmp_path)


def test_http_404_is_one_line_naming_the_url_without_its_query(http_server, tmp_path):
    with pytest.raises(StorageError) as info:
        storage.fetch(f"{http_server}/nope.mp4?token=abc123secret", tmp_path / "v.mp4")
    message = str(info.value)
    assert message == f"{http_server}/nope.mp4?… answered HTTP 404 (not found): check the URL"
    assert "abc123secret" not in message
    assert not (tmp_path / "v.mp4").exists()


def test_http_size_cap(http_server, tmp_path):
    config = storage.StorageConfig(http_max_bytes=1000)
    with pytest.raises(StorageError, match="over the .* limit"):
        storage.fetch(f"{http_server}/video.mp4", tmp_path / "v.mp4", config=config)
    assert list(tmp_path.iterdir()) == []


def test_http_server_that_never_answers_times_out_within_seconds(silent_server, tmp_path):
    config = storage.StorageConfig(max_attempts=2, backoff_s=0.1)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.fetch(f"{silent_server}/video.mp4", tmp_path / "v.mp4", config=config, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert "after 2 attempts" in str(info.value) and "timed out" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_videogen_prepare_on_a_url_that_never_answers_fails_with_defaults_in_seconds(silent_server, tmp_path):
    """The CLI with its default settings (no test overrides): a web server that accepts the connection and never
    answers ends in one error line naming the URL (after the retry's warning in the log), exit status 2, within
    about 20 s (10 s silence limit, 2 attempts) plus start-up."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "videogen", "prepare", "--video", f"{silent_server}/video.mp4",
                           "--output", str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videogen: error:")]
    assert len(errors) == 1 and f"{silent_server}/video.mp4" in errors[0] and "timed out" in errors[0], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in proc.stderr
    assert elapsed < 50, f"took {elapsed:.1f} s"  # was about 3 minutes with the object-store timeouts
    assert not (tmp_path / "ds").exists()
