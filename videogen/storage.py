"""Object storage and URLs: every read or write of a remote file goes through here.

Reads local paths, ``s3://bucket/key`` and ``minio://bucket/key`` URIs (KFP's scheme for the same thing) and, for inputs,
``http(s)://`` URLs; writes local paths and ``s3://`` / ``minio://`` URIs. Only the plain S3 API is used (stat, get,
put, multipart upload, list), so MinIO, SeaweedFS (KFP's default store since 2.15) and AWS S3 all work.

Guarantees:
- a download lands in a temporary file beside the destination and is renamed into place only when its size (and, for
  single-part unencrypted objects, its MD5 ETag) checks out: an interrupted download leaves no file at the destination;
- an upload above ``StorageConfig.part_size`` goes up in multipart parts; a failed upload is aborted, so no object that
  looks complete is left behind (a pending multipart upload is invisible to readers and is cleaned up on the next try);
- transient faults (connection refused or reset, timeouts, HTTP 5xx/429) are retried with exponential backoff, bounded
  in count and total time, then end in one :class:`~videogen.errors.StorageError` line naming the URI; permanent faults
  (missing bucket or key, rejected credentials) fail at once with a line that says what to do;
- credentials are read only here (flags/env -> :class:`StorageConfig`) and are never formatted into a log line, an
  error message or a repr.

Typical use: ``client = make_client(StorageConfig.from_env(endpoint=args.s3_endpoint))`` once, then pass ``client=`` to
:func:`fetch`, :func:`put`, :func:`download_dir` and :func:`upload_dir` (each makes one from the environment if not given).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from videogen.errors import StorageError

logger = logging.getLogger("videogen.storage")

MiB = 1024 * 1024
DEFAULT_ENDPOINT = "https://s3.amazonaws.com"
CHECKPOINT_STATE_FILE = "checkpoint"
"""TensorFlow's checkpoint state file: it names the latest checkpoint, so it is uploaded after the shards it names."""

_S3_SCHEMES = ("s3", "minio")
_HTTP_SCHEMES = ("http", "https")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")
_MD5_ETAG_RE = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG_RE = re.compile(r"^[0-9a-f]{32}-(\d+)$")
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                               "InvalidClientTokenId", "AuthorizationHeaderMalformed"})
_TRANSIENT_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                              "RequestTimeTooSkewed", "OperationAborted", "XMinioServerNotInitialized"})
_CHUNK = 1 * MiB

T = TypeVar("T")


class ObjectNotFoundError(StorageError):
    """The object, file or URL does not exist (S3 NoSuchKey, HTTP 404/410, a missing local file)."""


# ----------------------------------------------------------------------------------------------------------- URIs
@dataclass(frozen=True)
class ParsedURI:
    """A parsed location. ``kind`` is ``"local"``, ``"s3"`` (also for ``minio://``) or ``"http"`` (http and https)."""

    kind: str
    uri: str
    path: Path | None = None
    bucket: str | None = None
    key: str = ""
    url: str | None = None


def parse_uri(uri: str | os.PathLike) -> ParsedURI:
    """Parse a local path, ``file://`` URL, ``s3://`` / ``minio://`` URI or ``http(s)://`` URL.

    Raises:
        StorageError: a malformed URI (bad bucket name, unknown scheme).
    """
    if isinstance(uri, os.PathLike):
        return ParsedURI(kind="local", uri=os.fspath(uri), path=Path(uri))
    text = str(uri).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return ParsedURI(kind="local", uri=text, path=Path(text))
    scheme = scheme.lower()
    if scheme == "file":
        return ParsedURI(kind="local", uri=text, path=Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path)))
    if scheme in _S3_SCHEMES:
        bucket, _, key = rest.partition("/")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise StorageError(f"{_safe_uri(text)}: '{bucket}' is not a valid bucket name (3-63 characters: "
                               f"lowercase letters, digits, '.', '-'): fix the URI")
        return ParsedURI(kind="s3", uri=text, bucket=bucket, key=key)
    if scheme in _HTTP_SCHEMES:
        if not urllib.parse.urlsplit(text).hostname:
            raise StorageError(f"{_safe_uri(text)} has no host name: fix the URL")
        return ParsedURI(kind="http", uri=text, url=text)
    raise StorageError(f"unsupported location scheme '{scheme}://' in {_safe_uri(text)}: use a local path, "
                       f"s3://bucket/key, minio://bucket/key or an http(s):// URL")


def is_remote(uri: str | os.PathLike) -> bool:
    """True for ``s3://``, ``minio://`` and ``http(s)://`` locations; False for local paths and ``file://``."""
    if isinstance(uri, os.PathLike):
        return False
    scheme, sep, _ = str(uri).strip().partition("://")
    return bool(sep) and scheme.lower() in _S3_SCHEMES + _HTTP_SCHEMES


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URI with single slashes: ``join_uri("s3://b/x/", "run", "gen.mp4")``."""
    if not is_remote(base) and not str(base).startswith("file://"):
        return str(Path(base, *parts))
    text = str(base).rstrip("/")
    for part in parts:
        text += "/" + str(part).strip("/")
    return text


def _safe_uri(uri: str) -> str:
    """The URI as it may appear in a message: no user:password@ part and no query string (it may hold a token)."""
    try:
        split = urllib.parse.urlsplit(str(uri))
    except ValueError:
        return "<unparseable URI>"
    if not split.scheme or split.scheme.lower() not in _HTTP_SCHEMES + _S3_SCHEMES + ("file",):
        return str(uri)
    netloc = split.hostname or ""
    try:
        port = split.port
    except ValueError:  # a port that is not a number: left out, like the rest of the URI's login part
        port = None
    if port:
        netloc += f":{port}"
    if split.scheme.lower() in _S3_SCHEMES:
        netloc = split.netloc.rpartition("@")[2]
    query = "?…" if split.query else ""
    return urllib.parse.urlunsplit((split.scheme, netloc, split.path, "", "")) + query


# ---------------------------------------------------------------------------------------------------- configuration
class Secret:
    """A credential value that never shows itself in ``repr``/``str`` (so not in logs, reprs or ``asdict`` dumps)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class StorageConfig:
    """Where the object store is, how to log in, and how hard to try. Made by :meth:`from_env` in normal use.

    Timeouts and retry bounds apply to S3 and http(s) alike; tests shrink them to keep fault tests fast.
    """

    endpoint: str = DEFAULT_ENDPOINT
    """Object-store URL, e.g. ``http://minio-service.kubeflow:9000``; its scheme decides TLS."""
    access_key: Secret | None = field(default=None, repr=False)
    secret_key: Secret | None = field(default=None, repr=False)
    session_token: Secret | None = field(default=None, repr=False)
    region: str | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    """Longest silence from the server while waiting for an answer or for the next bytes of a body."""
    max_attempts: int = 5
    backoff_s: float = 0.5
    """First pause between attempts; doubles each time up to ``max_backoff_s``."""
    max_backoff_s: float = 8.0
    retry_deadline_s: float = 180.0
    """No new attempt starts after this many seconds since the first (one attempt may still run its course)."""
    part_size: int = 16 * MiB
    """Multipart part size (S3's minimum is 5 MiB); files larger than this go up in parts."""
    parallel_uploads: int = 1
    http_read_timeout_s: float = 10.0
    """http(s) inputs: longest silence from the web server (a URL that never answers fails in about 20 s, not
    minutes); a slow download that keeps sending bytes is not cut."""
    http_max_attempts: int = 2
    http_max_bytes: int = 8 * 1024 * MiB
    """Size cap for http(s) downloads (a hostile or broken server cannot fill the disk)."""
    ca_cert: str | None = None
    """CA bundle for an https endpoint with a private CA (default: $SSL_CERT_FILE, else certifi's bundle)."""

    def __post_init__(self) -> None:
        for name in ("access_key", "secret_key", "session_token"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value) if value else None)
        if self.part_size < 5 * MiB:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_env(cls, endpoint: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any
                 ) -> StorageConfig:
        """Explicit ``endpoint`` (e.g. ``--s3-endpoint``), else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``,
        else AWS S3; credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``);
        region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``. ``overrides`` set any other field."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "endpoint": endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT,
            "access_key": env.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env.get("AWS_SECRET_ACCESS_KEY") or None,
            "session_token": env.get("AWS_SESSION_TOKEN") or None,
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def endpoint_display(self) -> str:
        """``scheme://host[:port]`` of the endpoint, safe for messages."""
        split = urllib.parse.urlsplit(self.endpoint)
        netloc = split.hostname or ""
        if split.port:
            netloc += f":{split.port}"
        return f"{split.scheme}://{netloc}"

    def _secrets(self) -> list[str]:
        return [s.reveal() for s in (self.secret_key, self.session_token, self.access_key) if s]


@dataclass(frozen=True)
class StorageClient:
    """The minio client made once (by :func:`make_client`) together with the settings it was made from."""

    minio: Any
    config: StorageConfig

    @property
    def endpoint(self) -> str:
        return self.config.endpoint_display

    def __repr__(self) -> str:
        return f"StorageClient(endpoint={self.endpoint!r})"


def make_client(config: StorageConfig | None = None) -> StorageClient:
    """Make the minio client for ``config`` (default: :meth:`StorageConfig.from_env`).

    urllib3's own retries are switched off: :func:`_with_retries` retries whole operations (a multipart upload or a
    download restarts cleanly) with one bounded policy, and says which URI failed.
    """
    import certifi
    import urllib3
    from minio import Minio

    config = config or StorageConfig.from_env()
    split = urllib.parse.urlsplit(config.endpoint)
    if split.scheme not in _HTTP_SCHEMES or not split.hostname:
        raise StorageError(f"object-store endpoint {config.endpoint_display!s} is not an http:// or https:// URL: "
                           f"fix --s3-endpoint or AWS_ENDPOINT_URL")
    if split.username or split.password:
        raise StorageError(f"object-store endpoint {config.endpoint_display} must not carry credentials: pass them "
                           f"in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if split.path not in ("", "/"):
        raise StorageError(f"object-store endpoint {config.endpoint_display}{split.path} has a path: S3 endpoints are "
                           f"scheme://host:port only")
    host = split.hostname if split.port is None else f"{split.hostname}:{split.port}"
    if ":" in (split.hostname or ""):  # IPv6 literal
        host = f"[{split.hostname}]" + (f":{split.port}" if split.port else "")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s),
        maxsize=max(4, config.parallel_uploads),
        cert_reqs="CERT_REQUIRED",
        ca_certs=config.ca_cert or os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=False,
    )
    minio = Minio(
        host,
        access_key=config.access_key.reveal() if config.access_key else None,
        secret_key=config.secret_key.reveal() if config.secret_key else None,
        session_token=config.session_token.reveal() if config.session_token else None,
        secure=split.scheme == "https",
        region=config.region,
        http_client=http,
    )
    return StorageClient(minio=minio, config=config)


def _client(client: StorageClient | None, config: StorageConfig | None) -> StorageClient:
    if client is None:
        return make_client(config)
    if not isinstance(client, StorageClient):
        raise TypeError("client must be a videogen.storage.StorageClient (use storage.make_client)")
    return client


# -------------------------------------------------------------------------------------------------- error handling
class _Transient(Exception):
    """A fault worth another try that is not an exception of the client libraries (short body, changed object)."""


class _Permanent(Exception):
    """A fault not worth another try, already worded for the user."""


class _NotFound(_Permanent):
    """A missing object or URL, already worded for the user."""


def _status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    status = getattr(response, "status", None)
    if status is None:
        status = getattr(error, "status_code", None) or getattr(error, "_code", None)
    return status if isinstance(status, int) else None


def _is_transient(error: BaseException) -> bool | None:
    """True: retry; False: permanent; None: not a storage fault (a bug): let it through unchanged."""
    import urllib3.exceptions as u3
    from minio.error import InvalidResponseError, S3Error, ServerError

    if isinstance(error, _Transient):
        return True
    if isinstance(error, _Permanent):
        return False
    if isinstance(error, S3Error):
        status = _status_of(error) or 0
        return error.code in _TRANSIENT_CODES or status >= 500 or status == 429
    if isinstance(error, (ServerError, InvalidResponseError)):
        status = _status_of(error) or 0
        return status >= 500 or status == 429 or status == 0
    if isinstance(error, u3.MaxRetryError):
        return not isinstance(error.reason, u3.SSLError)
    if isinstance(error, u3.SSLError):
        return False
    if isinstance(error, u3.HTTPError):  # timeouts, refused/reset connections, truncated bodies
        return True
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    if isinstance(error, OSError):  # local disk: full, permission denied...
        return False
    return None


def _reason(error: BaseException) -> str:
    """A short, secret-free description of a fault for a message."""
    import urllib3.exceptions as u3
    from minio.error import S3Error

    if isinstance(error, u3.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, S3Error):
        return f"{error.code} (HTTP {_status_of(error)})"
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(error, (u3.NewConnectionError, ConnectionRefusedError)):
        return "connection refused"
    if isinstance(error, (u3.ReadTimeoutError, u3.ConnectTimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(error, (u3.ProtocolError, ConnectionError)):
        return "connection lost"
    if isinstance(error, (_Transient, _Permanent)):
        return str(error)
    status = _status_of(error)
    if status:
        return f"HTTP {status}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


@dataclass
class _Op:
    """What is being done, for messages: ``verb`` ("download", "upload", "list"), the URI and the endpoint."""

    verb: str
    uri: str
    endpoint: str = ""
    bucket: str | None = None

    def where(self) -> str:
        return f" at {self.endpoint}" if self.endpoint else ""


def _permanent_error(error: BaseException, op: _Op, secrets: Iterable[str] = ()) -> StorageError:
    from minio.error import S3Error

    uri = _safe_uri(op.uri)
    if isinstance(error, _NotFound):
        return ObjectNotFoundError(_redact(str(error), secrets))
    if isinstance(error, _Permanent):
        message = str(error)
    elif isinstance(error, S3Error) and error.code == "NoSuchBucket":
        message = (f"bucket '{op.bucket or error.bucket_name}' does not exist{op.where()}: create it or fix the "
                   f"location {uri}")
    elif isinstance(error, S3Error) and error.code in ("NoSuchKey", "ResourceNotFound"):
        return ObjectNotFoundError(f"{uri} does not exist{op.where()}: check the bucket and the key")
    elif isinstance(error, S3Error) and error.code in _CREDENTIAL_CODES:
        message = (f"credentials rejected by {op.endpoint} ({error.code}) for {uri}: check "
                   f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    elif isinstance(error, S3Error) and error.code == "AccessDenied":
        message = (f"access denied by {op.endpoint} to {op.verb} {uri}: check AWS_ACCESS_KEY_ID/"
                   f"AWS_SECRET_ACCESS_KEY and the bucket's policy")
    elif isinstance(error, S3Error):
        message = f"could not {op.verb} {uri}{op.where()}: the server answered {_reason(error)}: {error.message}"
    else:
        message = f"could not {op.verb} {uri}{op.where()}: {_reason(error)}"
    return StorageError(_redact(message, secrets))


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _with_retries(op: _Op, config: StorageConfig, attempt: Callable[[int], T]) -> T:
    """Run ``attempt(n)`` until it succeeds, a permanent fault occurs, or the attempt count or deadline runs out."""
    started = time.monotonic()
    delay = config.backoff_s
    secrets = config._secrets()
    for number in range(1, config.max_attempts + 1):
        try:
            return attempt(number)
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001 - classified right below; bugs are re-raised unchanged
            transient = _is_transient(error)
            if transient is None:
                raise
            if not transient:
                raise _permanent_error(error, op, secrets) from error
            elapsed = time.monotonic() - started
            if number == config.max_attempts or elapsed + delay > config.retry_deadline_s:
                raise StorageError(_redact(
                    f"could not {op.verb} {_safe_uri(op.uri)}{op.where()} after {number} attempt"
                    f"{'s' if number > 1 else ''} in {elapsed:.1f} s ({_reason(error)}): check that the server is "
                    f"up and reachable, then retry", secrets)) from error
            logger.warning("%s %s%s: %s; retrying in %.1f s (attempt %d of %d)", op.verb, _safe_uri(op.uri),
                           op.where(), _reason(error), delay, number + 1, config.max_attempts)
            time.sleep(delay)
            delay = min(delay * 2, config.max_backoff_s)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------- helpers
def _temp_beside(dest: Path) -> Path:
    """A temporary file beside ``dest`` with the permissions a plain ``open()`` would give (mkstemp makes 0600, and
    the rename would carry that onto the user's video)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unlink_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _copy_local(source: Path, dest: Path) -> Path:
    """Copy through a temporary file in the destination's directory and rename it into place."""
    if not source.is_file():
        raise ObjectNotFoundError(f"{source} does not exist or is not a file: check the path")
    dest = Path(dest)
    if dest.exists() and source.resolve() == dest.resolve():
        return dest
    tmp = _temp_beside(dest)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as error:
        raise StorageError(f"could not copy {source} to {dest}: {error.strerror or error}") from error
    finally:
        _unlink_quietly(tmp)
    return dest


def _plain_etag(etag: str | None) -> str:
    return (etag or "").strip().strip('"').lower()


def _encrypted(metadata: Mapping[str, str] | None) -> bool:
    """SSE-KMS and SSE-C objects have ETags that are not the MD5 of their content."""
    headers = {k.lower(): v for k, v in (metadata or {}).items()}
    return (headers.get("x-amz-server-side-encryption", "").lower() not in ("", "aes256")
            or "x-amz-server-side-encryption-customer-algorithm" in headers)


def _md5() -> Any:
    return hashlib.md5(usedforsecurity=False)


def _expected_etag(path: Path, size: int, part_size: int) -> str:
    """The ETag S3 gives ``path`` uploaded by minio with ``part_size``: MD5, or MD5 of part MD5s plus ``-N``."""
    from minio.helpers import get_part_info

    used_part_size, part_count = get_part_info(size, part_size)
    digests = []
    with open(path, "rb") as f:
        for _ in range(max(1, part_count)):
            part = _md5()
            remaining = used_part_size
            while remaining:
                block = f.read(min(_CHUNK, remaining))
                if not block:
                    break
                part.update(block)
                remaining -= len(block)
            digests.append(part)
    if part_count <= 1:
        return digests[0].hexdigest()
    combined = _md5()
    for digest in digests:
        combined.update(digest.digest())
    return f"{combined.hexdigest()}-{part_count}"


# ---------------------------------------------------------------------------------------------------------- fetch
def fetch(uri: str | os.PathLike, dest: str | os.PathLike, *, client: StorageClient | None = None,
          config: StorageConfig | None = None, timeout_s: float | None = None) -> Path:
    """Download ``uri`` to the file ``dest`` (or into ``dest`` if it is an existing directory); return the path.

    The bytes go to a temporary file beside ``dest`` that is renamed into place only when complete and checked, so
    an interrupted download leaves no file at ``dest``.

    Args:
        uri: local path, ``s3://`` / ``minio://`` URI or ``http(s)://`` URL.
        dest: destination file.
        client: the storage client (S3 only; default: one made from the environment).
        config: settings when no client is given (and for http(s) downloads).
        timeout_s: http(s) only: connect and read timeout in seconds (default: the config's).

    Raises:
        StorageError: missing object/URL, rejected credentials, or still failing after the retries.
    """
    ref = parse_uri(uri)
    dest = Path(dest)
    if ref.kind == "local":
        source = ref.path
        if dest.is_dir():
            dest = dest / source.name
        if not source.is_file():
            raise ObjectNotFoundError(f"{source} does not exist or is not a file: check the path")
        return _copy_local(source, dest)
    if ref.kind == "http":
        if dest.is_dir():
            dest = dest / (Path(urllib.parse.urlsplit(ref.url).path).name or "download")
        config = client.config if client is not None else (config or StorageConfig.from_env())
        return _fetch_http(ref.url, dest, config, timeout_s)
    if not ref.key or ref.key.endswith("/"):
        raise StorageError(f"{_safe_uri(ref.uri)} names no object (it ends with '/'): give the full key")
    if dest.is_dir():
        dest = dest / ref.key.rsplit("/", 1)[-1]
    client = _client(client, config)
    op = _Op("download", ref.uri, client.endpoint, ref.bucket)
    return _with_retries(op, client.config, lambda number: _fetch_s3_once(client, ref.bucket, ref.key, dest, op))


def _fetch_s3_once(client: StorageClient, bucket: str, key: str, dest: Path, op: _Op) -> Path:
    # GET first (no HEAD): an error answer to GET carries its S3 code (NoSuchBucket, SignatureDoesNotMatch...), an
    # error answer to HEAD has no body, so every 403 would read as "AccessDenied".
    started = time.monotonic()
    response = client.minio.get_object(bucket, key)
    tmp: Path | None = None
    written = 0
    try:
        headers = response.headers
        length = headers.get("Content-Length")
        if length is None or not length.isdigit():
            stat = client.minio.stat_object(bucket, key)
            expected_size, etag, metadata = stat.size, _plain_etag(stat.etag), stat.metadata
        else:
            expected_size, etag, metadata = int(length), _plain_etag(headers.get("ETag")), headers
        check_md5 = bool(_MD5_ETAG_RE.match(etag)) and not _encrypted(metadata)
        digest = _md5()
        tmp = _temp_beside(dest)
        with open(tmp, "wb") as f:
            for chunk in response.stream(_CHUNK, decode_content=False):
                f.write(chunk)
                written += len(chunk)
                if check_md5:
                    digest.update(chunk)
            f.flush()
            os.fsync(f.fileno())
        if written != expected_size:
            raise _Transient(f"got {written} of {expected_size} bytes")
        if check_md5 and digest.hexdigest() != etag:
            raise _Transient("content does not match the server's MD5 checksum")
        os.replace(tmp, dest)
    finally:
        response.close()
        response.release_conn()
        _unlink_quietly(tmp)
    logger.info("downloaded %s (%.1f MB) to %s in %.1f s", _safe_uri(op.uri), written / 1e6, dest,
                time.monotonic() - started)
    return dest


def _check_http_status(url: str, status: int) -> None:
    """Raise the retry class an HTTP status calls for (anything but 200 is an error)."""
    if status == 200:
        return
    if status in (404, 410):
        raise _NotFound(f"{_safe_uri(url)} answered HTTP {status} (not found): check the URL")
    if status in (401, 403):
        raise _Permanent(f"{_safe_uri(url)} answered HTTP {status} (access denied): check the URL or "
                         f"make the file public")
    if status >= 500 or status == 429:
        raise _Transient(f"HTTP {status}")
    raise _Permanent(f"{_safe_uri(url)} answered HTTP {status}: check the URL")


def _fetch_http(url: str, dest: Path, config: StorageConfig, timeout_s: float | None) -> Path:
    import certifi
    import urllib3

    connect = timeout_s if timeout_s is not None else config.connect_timeout_s
    read = timeout_s if timeout_s is not None else config.http_read_timeout_s
    config = replace(config, max_attempts=min(config.max_attempts, config.http_max_attempts))
    pool = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect, read=read),
        cert_reqs="CERT_REQUIRED",
        ca_certs=config.ca_cert or os.environ.get("SSL_CERT_FILE") or certifi.where(),
        # Follow a few redirects (urllib3 drops Authorization/Cookie on cross-host ones); no retries of its own.
        retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5, raise_on_redirect=True),
    )
    op = _Op("download", url)
    cap = config.http_max_bytes

    def once(number: int) -> Path:
        started = time.monotonic()
        response = pool.request("GET", url, preload_content=False, decode_content=False)
        tmp: Path | None = None
        try:
            _check_http_status(url, response.status)
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            if expected is not None and expected > cap:
                raise _Permanent(f"{_safe_uri(url)} is {expected / 1e6:.0f} MB, over the "
                                 f"{cap / 1e6:.0f} MB limit: download it yourself or raise the limit")
            tmp = _temp_beside(dest)
            written = 0
            with open(tmp, "wb") as f:
                for chunk in response.stream(_CHUNK, decode_content=False):
                    written += len(chunk)
                    if written > cap:
                        raise _Permanent(f"{_safe_uri(url)} sent more than the {cap / 1e6:.0f} MB limit: "
                                         f"download it yourself or raise the limit")
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if expected is not None and written != expected:
                raise _Transient(f"got {written} of {expected} bytes")
            os.replace(tmp, dest)
        finally:
            response.release_conn()
            _unlink_quietly(tmp)
        logger.info("downloaded %s (%.1f MB) to %s in %.1f s", _safe_uri(url), written / 1e6, dest,
                    time.monotonic() - started)
        return dest

    try:
        return _with_retries(op, config, once)
    finally:
        pool.clear()


# ------------------------------------------------------------------------------------------------------------- put
def put(local: str | os.PathLike, uri: str | os.PathLike, *, client: StorageClient | None = None,
        config: StorageConfig | None = None) -> str:
    """Upload the file ``local`` to ``uri`` (an ``s3://`` / ``minio://`` URI, or a local path); return ``uri``.

    Files above ``part_size`` go up as a multipart upload; on any failure the upload is aborted (and a pending upload
    left by a server that died is aborted on the next try), so no object that looks complete stays behind. After the
    upload the object's size (and ETag, where it is an MD5) is checked against the file.

    Raises:
        StorageError: missing local file or bucket, rejected credentials, or still failing after the retries.
    """
    local = Path(local)
    ref = parse_uri(uri)
    if ref.kind == "http":
        raise StorageError(f"cannot upload to {_safe_uri(ref.uri)}: outputs go to a local path, s3:// or minio://")
    if ref.kind == "local":
        return str(_copy_local(local, ref.path))
    if not local.is_file():
        raise StorageError(f"{local} does not exist or is not a file: nothing to upload")
    if not ref.key or ref.key.endswith("/"):
        raise StorageError(f"{_safe_uri(ref.uri)} names no object (it ends with '/'): give the full key")
    client = _client(client, config)
    op = _Op("upload", ref.uri, client.endpoint, ref.bucket)
    _with_retries(op, client.config, lambda number: _put_s3_once(client, local, ref.bucket, ref.key, op, number))
    return ref.uri


def _put_s3_once(client: StorageClient, local: Path, bucket: str, key: str, op: _Op, number: int) -> None:
    config = client.config
    size = local.stat().st_size
    started = time.monotonic()
    if number > 1 or size > config.part_size:
        # A multipart upload of this key cut off earlier (here or in a killed process) cannot have been aborted if
        # the server was unreachable then: abort it now that the server answers.
        _abort_pending_uploads(client, bucket, key)
    content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
    try:
        client.minio.fput_object(bucket, key, str(local), content_type=content_type, part_size=config.part_size,
                                 num_parallel_uploads=config.parallel_uploads)
    except Exception:
        # minio aborts the multipart upload itself, but the abort fails too when the server is gone.
        _abort_pending_uploads(client, bucket, key)
        raise
    stat = client.minio.stat_object(bucket, key)
    if stat.size != size:
        raise _Transient(f"the server holds {stat.size} of {size} bytes after the upload")
    etag = _plain_etag(stat.etag)
    if (_MD5_ETAG_RE.match(etag) or _MULTIPART_ETAG_RE.match(etag)) and not _encrypted(stat.metadata):
        expected = _expected_etag(local, size, config.part_size)
        if etag != expected:
            raise _Transient("the uploaded object's checksum does not match the file")
    logger.info("uploaded %s (%.1f MB) to %s in %.1f s", local, size / 1e6, _safe_uri(op.uri),
                time.monotonic() - started)


def _abort_pending_uploads(client: StorageClient, bucket: str, key: str) -> None:
    """Best effort: abort incomplete multipart uploads of exactly ``key`` (their parts cost storage, never read).

    Uses minio's ListMultipartUploads/AbortMultipartUpload wrappers (plain S3 API calls that minio keeps private).
    """
    lister = getattr(client.minio, "_list_multipart_uploads", None)
    aborter = getattr(client.minio, "_abort_multipart_upload", None)
    if lister is None or aborter is None:
        return
    try:
        result = lister(bucket, prefix=key, max_uploads=100)
        for upload in result.uploads or []:
            if upload.object_name == key:
                aborter(bucket, key, upload.upload_id)
                logger.info("aborted an unfinished multipart upload of %s", _safe_uri(f"s3://{bucket}/{key}"))
    except Exception as error:  # noqa: BLE001 - cleanup only; the caller reports the real failure
        logger.debug("could not list/abort pending uploads of s3://%s/%s: %s", bucket, key, _reason(error))


# ---------------------------------------------------------------------------------------------------- directories
def _checkpoint_last(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (n == CHECKPOINT_STATE_FILE, n))


def upload_dir(local_dir: str | os.PathLike, uri: str | os.PathLike, files: list[str] | None = None, *,
               client: StorageClient | None = None, config: StorageConfig | None = None) -> int:
    """Mirror files of ``local_dir`` to ``uri`` (a prefix URI or a local directory); return how many were copied.

    Args:
        local_dir: the directory to copy from.
        uri: ``s3://bucket/prefix``, ``minio://...`` or a local directory.
        files: relative names to copy, in this order (the caller puts TensorFlow's ``checkpoint`` state file last);
            default: every file below ``local_dir``, sorted, with a top-level ``checkpoint`` file last.
    """
    local_dir = Path(local_dir)
    if files is None:
        names = [p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file()]
        files = _checkpoint_last(names)
    ref = parse_uri(uri)
    if ref.kind == "http":
        raise StorageError(f"cannot upload to {_safe_uri(ref.uri)}: use a local path, s3:// or minio://")
    if ref.kind == "s3":
        client = _client(client, config)
    for name in files:
        if ref.kind == "local":
            _copy_local(local_dir / name, ref.path / name)
        else:
            put(local_dir / name, join_uri(ref.uri, name), client=client)
    logger.info("copied %d files from %s to %s", len(files), local_dir, _safe_uri(ref.uri))
    return len(files)


def list_dir(uri: str | os.PathLike, *, client: StorageClient | None = None,
             config: StorageConfig | None = None) -> list[str]:
    """Relative names of every object under the prefix ``uri`` (or every file below a local directory), sorted with a
    top-level ``checkpoint`` state file last. A missing prefix or directory lists nothing. Names that would land
    outside a directory (``..``, absolute) are refused."""
    ref = parse_uri(uri)
    if ref.kind == "http":
        raise StorageError(f"cannot list {_safe_uri(ref.uri)}: directories come from a local path, s3:// or minio://")
    if ref.kind == "local":
        if not ref.path.is_dir():
            return []
        return _checkpoint_last([p.relative_to(ref.path).as_posix() for p in ref.path.rglob("*") if p.is_file()])
    client = _client(client, config)
    prefix = ref.key.rstrip("/") + "/" if ref.key.strip("/") else ""
    op = _Op("list", ref.uri, client.endpoint, ref.bucket)
    keys = _with_retries(op, client.config, lambda number: [
        obj.object_name for obj in client.minio.list_objects(ref.bucket, prefix=prefix, recursive=True)
        if not obj.is_dir and not obj.object_name.endswith("/")])
    relative = []
    for key in keys:
        name = key[len(prefix):]
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise StorageError(f"refusing object '{_safe_uri(key)}' under {_safe_uri(ref.uri)}: its name would "
                               f"land outside the directory")
        relative.append(name)
    return _checkpoint_last(relative)


def download_dir(uri: str | os.PathLike, local_dir: str | os.PathLike, files: list[str] | None = None, *,
                 client: StorageClient | None = None, config: StorageConfig | None = None) -> int:
    """Copy objects under the prefix ``uri`` (or files of a local directory) into ``local_dir``.

    A prefix with no objects (or a missing local directory) copies nothing and returns 0: a first run has no
    checkpoints yet. Object names that would land outside ``local_dir`` are refused.

    Args:
        files: relative names to copy, in this order; default: every name :func:`list_dir` gives (state file last).

    Returns:
        How many files were copied.
    """
    local_dir = Path(local_dir)
    ref = parse_uri(uri)
    if ref.kind == "s3":
        client = _client(client, config)
    names = list_dir(uri, client=client, config=config) if files is None else list(files)
    local_dir.mkdir(parents=True, exist_ok=True)
    root = local_dir.resolve()
    for name in names:
        if root not in (local_dir / name).resolve().parents:
            raise StorageError(f"refusing '{name}' under {_safe_uri(ref.uri)}: its name would land outside {local_dir}")
    # The state file last: a reader that sees `checkpoint` locally also has the shards it names.
    for name in names:
        if ref.kind == "local":
            _copy_local(ref.path / name, local_dir / name)
        else:
            fetch(join_uri(ref.uri, name), local_dir / name, client=client)
    logger.info("copied %d files from %s to %s", len(names), _safe_uri(ref.uri), local_dir)
    return len(names)


def remove(uri: str | os.PathLike, *, client: StorageClient | None = None, config: StorageConfig | None = None) -> None:
    """Delete one object (or local file); a missing one is not an error."""
    ref = parse_uri(uri)
    if ref.kind == "http":
        raise StorageError(f"cannot delete {_safe_uri(ref.uri)}: only local paths, s3:// and minio://")
    if ref.kind == "local":
        ref.path.unlink(missing_ok=True)
        return
    client = _client(client, config)
    op = _Op("delete", ref.uri, client.endpoint, ref.bucket)
    _with_retries(op, client.config, lambda number: client.minio.remove_object(ref.bucket, ref.key))


# -------------------------------------------------------------------------------------------------------- identity
def object_identity(uri: str | os.PathLike, *, client: StorageClient | None = None,
                    config: StorageConfig | None = None) -> str:
    """A short text that changes when the content at ``uri`` changes and stays while it does not (no full read):

    - local file: ``size``, ``mtime_ns`` and the SHA-256 of its first MiB;
    - ``s3://`` / ``minio://``: the object's ETag (its MD5 for single-part uploads) and size, or size and
      last-modified time when the store gives no ETag (one stat request, no retries);
    - ``http(s)://``: the ``ETag``, else ``Last-Modified`` and ``Content-Length`` of a HEAD request.

    Returns ``""`` when nothing identifies it: a missing local file, or an http server that sends none of those headers.

    Raises:
        StorageError: the object store or web server could not be asked (missing object, rejected credentials,
            unreachable); callers that can go on without an identity catch it.
    """
    ref = parse_uri(uri)
    if ref.kind == "local":
        return _local_identity(ref.path)
    if ref.kind == "http":
        config = client.config if client is not None else (config or StorageConfig.from_env())
        return _http_identity(ref.url, config)
    client = _client(client, config)
    op = _Op("look up", ref.uri, client.endpoint, ref.bucket)
    once = replace(client.config, max_attempts=1)
    stat = _with_retries(op, once, lambda number: client.minio.stat_object(ref.bucket, ref.key))
    etag = _plain_etag(stat.etag)
    if etag:
        return f"etag={etag};size={stat.size}"
    modified = stat.last_modified.isoformat() if stat.last_modified else ""
    return f"size={stat.size};last_modified={modified}"


def _local_identity(path: Path) -> str:
    if not path.is_file():
        return ""
    stat = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(MiB)).hexdigest()
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns};sha256_1mib={head}"


def _http_identity(url: str, config: StorageConfig) -> str:
    import certifi
    import urllib3

    pool = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=config.connect_timeout_s, read=config.http_read_timeout_s),
        cert_reqs="CERT_REQUIRED", ca_certs=config.ca_cert or os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5, raise_on_redirect=True))

    def once(number: int) -> str:
        response = pool.request("HEAD", url, preload_content=False)
        try:
            _check_http_status(url, response.status)
            etag = response.headers.get("ETag", "").strip()
            if etag:
                return f"etag={etag}"
            return ";".join(f"{name.lower()}={response.headers[name].strip()}"
                            for name in ("Last-Modified", "Content-Length") if response.headers.get(name))
        finally:
            response.release_conn()

    try:
        return _with_retries(_Op("look up", url), replace(config, max_attempts=1), once)
    finally:
        pool.clear()
