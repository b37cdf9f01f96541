"""A real S3-compatible server on loopback for tests, and a TCP proxy that injects faults in front of it.

- :class:`S3Server`: moto's S3 server (``python -m moto.server``) in a subprocess on ``127.0.0.1`` and a free port,
  with IAM authentication switched on (an IAM user with an allow-all policy is created first), so wrong credentials
  are really rejected. ``start()`` / ``stop(kill=True)`` let a test stop it mid-transfer. Nothing global is set: tests
  get the endpoint and credentials from the object (``server.storage_config()``), never from ``os.environ``.
- :class:`FaultProxy`: a loopback TCP proxy to any port that can refuse connections (``down()`` / ``up()``), cut every
  connection after N bytes in either direction, or stall (stop forwarding, keep sockets open) after N bytes.

Fixtures: ``s3_server`` (session-wide server, shared), ``s3_bucket`` (a fresh bucket per test on it), ``s3_client``
(a videogen storage client for it).
Use from a test module with ``from tests.s3server import s3_server, s3_bucket  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGKILL when the test process dies, so no server outlives a killed run."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class S3Server:
    """moto's S3 server in a subprocess on 127.0.0.1 (in-memory: a restarted server starts empty).

    Start it from a thread that lives as long as the server should (normally the main thread): the child is killed
    when the thread that started it ends, so a killed test run leaves no server behind.
    """

    port: int = 0
    auth: bool = True
    access_key: str = ""
    secret_key: str = ""
    region: str = REGION
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> S3Server:
        """Start the server (on ``port``, or a free one) and wait until it answers; set up credentials."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.port = self.port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": "bootstrap", "AWS_SECRET_ACCESS_KEY": "bootstrap",
                    "AWS_DEFAULT_REGION": self.region, "MOTO_PORT": str(self.port)})
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        if log is not subprocess.DEVNULL:
            log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop(kill=True)  # never leave an orphan server behind
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout_s} s")
        if self.auth:
            self._enable_auth()
        else:
            self.access_key, self.secret_key = self.access_key or "test-access", self.secret_key or "test-secret"

    def _enable_auth(self) -> None:
        """Create an IAM user with an allow-all policy and an access key, then turn on moto's request checking."""
        import boto3

        # botocore's debug log prints the CreateAccessKey answer, secret included: keep it out of captured logs.
        quiet = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3")}
        for name in quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            self._create_iam_user(boto3)
        finally:
            for name, level in quiet.items():
                logging.getLogger(name).setLevel(level)
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _create_iam_user(self, boto3) -> None:
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=self.region,
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="videogen-test")
        iam.put_user_policy(UserName="videogen-test", PolicyName="all",
                            PolicyDocument='{"Version": "2012-10-17", "Statement": '
                                           '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}')
        key = iam.create_access_key(UserName="videogen-test")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGKILL with ``kill=True`` (as a crash would), else SIGTERM."""
        if self.process is None:
            return
        if self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The standard AWS_* variables for this server, for ``monkeypatch.setenv`` or a subprocess's env."""
        return {"AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    def storage_config(self, endpoint: str | None = None, **overrides):
        """A :class:`videogen.storage.StorageConfig` for this server with short test timeouts and retries."""
        from videogen.storage import StorageConfig

        values = dict(endpoint=endpoint or self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                      region=self.region, connect_timeout_s=2.0, read_timeout_s=5.0, max_attempts=3,
                      backoff_s=0.1, max_backoff_s=0.5, retry_deadline_s=15.0, part_size=5 * 1024 * 1024)
        values.update(overrides)
        return StorageConfig(**values)

    def minio(self, endpoint: str | None = None):
        """A plain minio client for checking what is on the server (not through videogen.storage)."""
        from minio import Minio

        return Minio((endpoint or self.endpoint).split("://", 1)[1], access_key=self.access_key,
                     secret_key=self.secret_key, secure=False, region=self.region)

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"b-{uuid.uuid4().hex[:12]}"
        self.minio().make_bucket(name)
        return name

    def pending_uploads(self, bucket: str, key: str) -> list[str]:
        """Upload ids of unfinished multipart uploads of ``key`` (S3 ListMultipartUploads)."""
        result = self.minio()._list_multipart_uploads(bucket, prefix=key)
        return [u.upload_id for u in (result.uploads or []) if u.object_name == key]

    def object_exists(self, bucket: str, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.minio().stat_object(bucket, key)
            return True
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket"):
                return False
            raise


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port`` that injects faults on command.

    ``up_bytes`` counts client->server bytes and ``down_bytes`` server->client bytes over all connections.

    - ``down()``: stop listening (new connections are refused), close open ones; ``up()``: listen again.
    - ``cut_after(up=N)`` / ``cut_after(down=N)``: once N bytes passed that way, close every connection and go down.
    - ``stall_after(down=N)``: once N bytes passed server->client, forward nothing more (sockets stay open), for this
      and every later connection, until ``unstall()``; clients then hit their read timeout.
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.up_bytes = 0
        self.down_bytes = 0
        self._cut_up: int | None = None
        self._cut_down: int | None = None
        self._stall_down: int | None = None
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._closed = False
        self.cut_event = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> FaultProxy:
        self.up()
        return self

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def cut_after(self, up: int | None = None, down: int | None = None) -> None:
        with self._lock:
            self.cut_event.clear()
            self._cut_up = None if up is None else self.up_bytes + up
            self._cut_down = None if down is None else self.down_bytes + down

    def stall_after(self, down: int) -> None:
        with self._lock:
            self._stall_down = self.down_bytes + down

    def unstall(self) -> None:
        with self._lock:
            self._stall_down = None

    def close(self) -> None:
        self._closed = True
        self.down()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((LOOPBACK, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._conns.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while True:
                with self._lock:
                    stalled = self._stall_down is not None and self.down_bytes >= self._stall_down
                    alive = client in self._conns
                if not alive:
                    return
                readable = [client] if stalled else [client, server]
                ready, _, _ = select.select(readable, [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    upward = sock is client
                    with self._lock:
                        if not upward and self._stall_down is not None:
                            data = data[:max(0, self._stall_down - self.down_bytes)]
                        if upward:
                            self.up_bytes += len(data)
                        else:
                            self.down_bytes += len(data)
                        cut = ((self._cut_up is not None and self.up_bytes >= self._cut_up)
                               or (self._cut_down is not None and self.down_bytes >= self._cut_down))
                    if cut:
                        self._cut_up = self._cut_down = None
                        self.cut_event.set()
                        self.down()
                        return
                    if data:
                        peers[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(client)
                self._conns.discard(server)
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 for the whole session (endpoint + credentials on the object; no env set)."""
    server = S3Server(log_path=tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the session server."""
    return s3_server.make_bucket()


@pytest.fixture
def s3_client(s3_server):
    """A videogen storage client for the session server."""
    from videogen import storage

    return storage.make_client(s3_server.storage_config())
