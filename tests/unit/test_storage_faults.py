"""Storage faults (issue 6): the object store down at the start, dying mid-upload and mid-download, stalling, rejecting
credentials, missing a bucket. Each case ends in one clear StorageError (or succeeds when the server comes back inside
the retry window), never leaves a partial file at the destination or a complete-looking object, and never shows the
secret key in a message, a traceback or a log line.

How the faults are made (all real sockets on 127.0.0.1, the real minio client, moto's S3 server):
- most cases put a :class:`tests.s3server.FaultProxy` between the client and a live moto server and cut, refuse or
  stall connections at a chosen byte count. moto keeps its state in memory, so a *killed* server comes back empty and
  could not tell us whether a half-finished upload left something behind; behind the proxy the server stays alive, so
  after the fault we can ask it what it holds (objects and pending multipart uploads);
- one case really SIGKILLs a moto process mid-upload, to check the error path against a crashed server; what it held
  is gone with it, so that test checks the error and that no object existed before the crash, nothing more.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from pathlib import Path

import pytest

from tests.s3server import FaultProxy, S3Server, free_port
from videogen import storage
from videogen.errors import StorageError

# The shared S3 server fixtures (tests.s3server), used by name below.

MB = 1000 * 1000


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MB + 77))
    return path


@pytest.fixture
def proxy(s3_server):
    proxy = FaultProxy(s3_server.port).start()
    yield proxy
    proxy.close()


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _assert_secret_hidden(server: S3Server, error: BaseException | None, caplog) -> None:
    """The secret key is in neither the message, the whole traceback chain, nor any captured log line."""
    texts = [caplog.text]
    if error is not None:
        texts += [str(error), "".join(traceback.format_exception(error))]
    for text in texts:
        assert server.secret_key not in text


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and message
    return message


def test_server_down_at_start_is_retried_then_one_clear_error(s3_server, big_file, tmp_path, logs):
    dead = f"http://127.0.0.1:{free_port()}"
    client = storage.make_client(s3_server.storage_config(endpoint=dead, max_attempts=3, backoff_s=0.1))
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.put(big_file, "s3://videos/out/gen.mp4", client=client)
    message = _one_line(info.value)
    assert message.startswith(f"could not upload s3://videos/out/gen.mp4 at {dead} after 3 attempts")
    assert "connection refused" in message and "check that the server is up" in message
    with pytest.raises(StorageError, match="could not download s3://videos/in.mp4 .* after 3 attempts"):
        storage.fetch("s3://videos/in.mp4", tmp_path / "in.mp4", client=client)
    assert time.monotonic() - started < 5
    assert sum("retrying in" in r.getMessage() for r in logs.records) == 4  # 2 retries per call
    assert not (tmp_path / "in.mp4").exists()
    _assert_secret_hidden(s3_server, info.value, logs)


def test_server_that_comes_up_within_the_retry_window_succeeds(s3_server, s3_bucket, proxy, big_file, logs):
    proxy.down()  # nothing listens: connection refused
    threading.Timer(0.6, proxy.up).start()
    client = storage.make_client(s3_server.storage_config(endpoint=proxy.endpoint, max_attempts=6, backoff_s=0.2))
    storage.put(big_file, f"s3://{s3_bucket}/late.bin", client=client)
    assert s3_server.minio().stat_object(s3_bucket, "late.bin").size == big_file.stat().st_size
    assert any("connection refused; retrying" in r.getMessage() for r in logs.records)


def test_down_mid_upload_leaves_no_object_and_next_upload_cleans_up(s3_server, s3_bucket, proxy, big_file, logs):
    key = "run-1/gen.mp4"
    client = storage.make_client(s3_server.storage_config(endpoint=proxy.endpoint, max_attempts=2, backoff_s=0.1))
    proxy.cut_after(up=7 * MB)  # inside part 2 of 3; the proxy then refuses connections (abort cannot get through)
    with pytest.raises(StorageError) as info:
        storage.put(big_file, f"s3://{s3_bucket}/{key}", client=client)
    assert proxy.cut_event.is_set()
    message = _one_line(info.value)
    assert f"could not upload s3://{s3_bucket}/{key}" in message and "after 2 attempts" in message
    _assert_secret_hidden(s3_server, info.value, logs)

    # Ask the server itself (it never went away): no object, only the unfinished multipart upload.
    assert not s3_server.object_exists(s3_bucket, key)
    assert len(s3_server.pending_uploads(s3_bucket, key)) == 1
    # Back up: the next upload of the key aborts the leftover and succeeds.
    proxy.up()
    storage.put(big_file, f"s3://{s3_bucket}/{key}", client=client)
    assert s3_server.pending_uploads(s3_bucket, key) == []
    assert s3_server.minio().stat_object(s3_bucket, key).size == big_file.stat().st_size


def test_brief_outage_mid_upload_is_retried_to_a_complete_object(s3_server, s3_bucket, proxy, big_file, tmp_path):
    key = "run-2/gen.mp4"
    client = storage.make_client(s3_server.storage_config(endpoint=proxy.endpoint, max_attempts=4, backoff_s=0.3))
    proxy.cut_after(up=6 * MB)
    watcher = threading.Thread(target=lambda: proxy.cut_event.wait(10) and (time.sleep(0.2), proxy.up()))
    watcher.start()
    storage.put(big_file, f"s3://{s3_bucket}/{key}", client=client)
    watcher.join()
    assert proxy.cut_event.is_set()
    assert s3_server.pending_uploads(s3_bucket, key) == []
    back = storage.fetch(f"s3://{s3_bucket}/{key}", tmp_path / "back.bin", client=client)
    assert back.read_bytes() == big_file.read_bytes()


def test_server_killed_mid_upload_gives_one_clear_error(big_file, tmp_path, logs):
    """A real crash: SIGKILL the moto process once 6 MB of the 12 MB upload went through (counted by a proxy that
    injects nothing). moto is in-memory, so the restarted server cannot be asked what the dead one held; this test
    checks the error path and that no object existed under the key before the crash."""
    server = S3Server(log_path=tmp_path / "moto.log").start()
    proxy = FaultProxy(server.port).start()
    try:
        bucket = server.make_bucket()
        assert not server.object_exists(bucket, "gen.mp4")
        client = storage.make_client(server.storage_config(endpoint=proxy.endpoint, max_attempts=2, backoff_s=0.1))

        def kill_when_halfway():
            deadline = time.monotonic() + 20
            while proxy.up_bytes < 6 * MB and time.monotonic() < deadline:
                time.sleep(0.005)
            server.stop(kill=True)

        killer = threading.Thread(target=kill_when_halfway)
        killer.start()
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            storage.put(big_file, f"s3://{bucket}/gen.mp4", client=client)
        killer.join()
        message = _one_line(info.value)
        assert f"could not upload s3://{bucket}/gen.mp4" in message and "check that the server is up" in message
        assert time.monotonic() - started < 15
        _assert_secret_hidden(server, info.value, logs)
    finally:
        proxy.close()
        server.stop(kill=True)


def test_down_mid_download_leaves_no_file_at_destination(s3_server, s3_bucket, proxy, big_file, tmp_path, logs):
    s3_server.minio().fput_object(s3_bucket, "in.bin", str(big_file))
    client = storage.make_client(s3_server.storage_config(endpoint=proxy.endpoint, max_attempts=2, backoff_s=0.1))
    dest = tmp_path / "out" / "in.bin"
    proxy.cut_after(down=4 * MB)
    with pytest.raises(StorageError) as info:
        storage.fetch(f"minio://{s3_bucket}/in.bin", dest, client=client)
    assert proxy.cut_event.is_set()
    assert f"could not download minio://{s3_bucket}/in.bin" in _one_line(info.value)
    assert list(dest.parent.iterdir()) == [], "no partial file and no temporary file may stay behind"
    _assert_secret_hidden(s3_server, info.value, logs)

    # An existing older copy at the destination is left as it was, never half-overwritten.
    dest.write_bytes(b"previous")
    proxy.up()
    proxy.cut_after(down=4 * MB)
    with pytest.raises(StorageError):
        storage.fetch(f"minio://{s3_bucket}/in.bin", dest, client=client)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in dest.parent.iterdir()] == ["in.bin"]

    proxy.up()
    assert storage.fetch(f"minio://{s3_bucket}/in.bin", dest, client=client).read_bytes() == big_file.read_bytes()


def test_stalled_server_hits_the_read_timeout(s3_server, s3_bucket, proxy, big_file, tmp_path, logs):
    s3_server.minio().fput_object(s3_bucket, "slow.bin", str(big_file))
    client = storage.make_client(s3_server.storage_config(endpoint=proxy.endpoint, read_timeout_s=0.7,
                                                          max_attempts=2, backoff_s=0.1))
    proxy.stall_after(down=2 * MB)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.fetch(f"s3://{s3_bucket}/slow.bin", tmp_path / "slow.bin", client=client)
    elapsed = time.monotonic() - started
    message = _one_line(info.value)
    assert "timed out" in message and "after 2 attempts" in message
    assert elapsed < 6, f"took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == [tmp_path / "big.bin"]
    _assert_secret_hidden(s3_server, info.value, logs)


@pytest.mark.parametrize("case", ["wrong secret", "wrong access key", "missing bucket"])
def test_permanent_faults_fail_fast_with_what_to_do(s3_server, s3_bucket, big_file, tmp_path, logs, case):
    overrides = {"wrong secret": {"secret_key": "x" * 40}, "wrong access key": {"access_key": "AKIANOTAKEY000000000"},
                 "missing bucket": {}}[case]
    bucket = "no-such-bucket-here" if case == "missing bucket" else s3_bucket
    client = storage.make_client(s3_server.storage_config(max_attempts=5, backoff_s=1.0, **overrides))
    started = time.monotonic()
    errors = []
    for call in (lambda: storage.put(big_file, f"s3://{bucket}/k.bin", client=client),
                 lambda: storage.fetch(f"s3://{bucket}/k.bin", tmp_path / "k.bin", client=client),
                 lambda: storage.download_dir(f"s3://{bucket}/ckpt", tmp_path / "ckpt", client=client)):
        with pytest.raises(StorageError) as info:
            call()
        errors.append(info.value)
        _assert_secret_hidden(s3_server, info.value, logs)
    assert time.monotonic() - started < 3, "permanent faults must not be retried"
    expected = ("does not exist" if case == "missing bucket" else "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    assert all(expected in _one_line(e) for e in errors)
    assert not (tmp_path / "k.bin").exists()
    assert not any("retrying" in r.getMessage() for r in logs.records)


def test_storage_config_secret_never_in_repr_or_logs(s3_server, logs):
    config = s3_server.storage_config()
    logging.getLogger("videogen.test").info("config: %s %r", config, config)
    assert s3_server.secret_key not in logs.text
    assert s3_server.secret_key not in repr(storage.make_client(config))


def test_client_survives_until_used_as_one_object(s3_server, s3_bucket, big_file, tmp_path):
    """The client is made once and reused for many transfers (no per-call client)."""
    client = storage.make_client(s3_server.storage_config())
    for index in range(3):
        storage.put(big_file, f"s3://{s3_bucket}/many/{index}.bin", client=client)
    assert storage.download_dir(f"s3://{s3_bucket}/many", tmp_path / "many", client=client) == 3
    assert sorted(p.name for p in Path(tmp_path / "many").iterdir()) == ["0.bin", "1.bin", "2.bin"]
