"""Cluster side of the CLI: upload the compiled pipeline to Kubeflow Pipelines, start a run, wait, fetch the video.

Reads a compiled pipeline YAML and run arguments; talks to the KFP v2beta1 API through ``kfp.Client``; writes nothing
on the cluster except a pipeline (created once), a pipeline version per distinct package, an experiment (created once)
and the run.

Versioning: a package's version is named ``sha256-<first 16 hex digits of the YAML's SHA-256>``. A submit with an
unchanged package reuses that version; a changed package uploads a new one. When the pipeline is created, KFP makes a
first version named after the pipeline; we then add the hash-named version too (same content) so that the lookup by
name works on every later submit, whatever name the backend gave the first version.

Results: the pipeline's last stage publishes the video to ``{output_root}/{run id}/gen.mp4`` (``videogen.runs``;
the run id comes from KFP's ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``, ``{{$.pipeline_job_uuid}}``, which the backend
replaces with the run's UUID, the same id ``kfp.Client`` returns). ``fetch_result`` downloads the results through
KFP's v2beta1 artifact API (signed URLs; :class:`ArtifactAPI`) where the backend has it, and from that published
location otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videogen import runs, storage
from videogen.artifacts import REPORT_FILE, SUMMARY_FILE
from videogen.errors import StorageError, VideogenError

logger = logging.getLogger("videogen.submit")

VERSION_PREFIX = "sha256-"
SUCCEEDED = "SUCCEEDED"
_FINISHED = {"SUCCEEDED", "FAILED", "SKIPPED", "ERROR", "CANCELED", "CANCELLED"}


@dataclass(frozen=True)
class SubmitResult:
    """What a submit created or reused, and where to watch it."""

    run_id: str
    pipeline_id: str
    version_id: str
    url: str
    """The run's page in the Kubeflow UI: ``{host}/#/runs/details/{run_id}``."""
    version_name: str = ""
    new_version: bool = False
    state: str | None = None
    """The run's final state when ``wait=True`` (``SUCCEEDED``...), else None."""


def run_url(host: str, run_id: str) -> str:
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def package_version_name(package_path: str | Path) -> str:
    """The version name of a compiled package: ``sha256-`` and 16 hex digits of its SHA-256."""
    return VERSION_PREFIX + hashlib.sha256(Path(package_path).read_bytes()).hexdigest()[:16]


def pipeline_name_of(package_path: str | Path) -> str:
    """``pipelineInfo.name`` of a compiled pipeline YAML."""
    import yaml

    with open(package_path) as f:
        first = next(yaml.safe_load_all(f), None) or {}
    name = (first.get("pipelineInfo") or {}).get("name")
    if not name:
        raise VideogenError(f"{package_path} is not a compiled KFP pipeline (no pipelineInfo.name): compile it with "
                            f"`videogen compile`")
    return name


def make_kfp_client(host: str, *, existing_token: str | None = None, cookies: str | None = None,
                    namespace: str | None = None, ssl_ca_cert: str | None = None) -> Any:
    """``kfp.Client`` for ``host`` with the multi-user options it supports (bearer token, cookie header, namespace)."""
    import kfp

    kwargs: dict[str, Any] = {"host": host.rstrip("/"), "existing_token": existing_token, "cookies": cookies,
                              "ssl_ca_cert": ssl_ca_cert}
    if namespace:  # kfp.Client treats any value other than its default 'kubeflow' as an override, None included
        kwargs["namespace"] = namespace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later": we need v2
        return _kfp_call(host, "connect to", lambda: kfp.Client(**kwargs))


def _kfp_call(host: str, what: str, call):
    """Run a kfp.Client call; turn API and connection failures into one VideogenError line (no token, no body)."""
    import kfp_server_api
    import urllib3

    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):  # kfp prints links; we log our own
            return call()
    except kfp_server_api.ApiException as error:
        status = getattr(error, "status", None)
        hint = {401: "pass --token (or $KFP_TOKEN) or --cookies", 403: "check --namespace and your access to it",
                404: "check --host (it usually ends in /pipeline)"}.get(status, "check --host and the KFP logs")
        raise VideogenError(f"Kubeflow Pipelines at {host} refused to {what} (HTTP {status} {error.reason}): "
                            f"{hint}") from None
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
        raise VideogenError(f"cannot reach Kubeflow Pipelines at {host} to {what} ({type(error).__name__}): check "
                            f"--host and that the API is reachable (e.g. kubectl port-forward)") from None
    finally:
        for line in output.getvalue().splitlines():
            logger.debug("kfp: %s", line)


def _find_version(client: Any, host: str, pipeline_id: str, version_name: str) -> str | None:
    version_filter = json.dumps({"predicates": [
        {"operation": "EQUALS", "key": "display_name", "stringValue": version_name}]})
    token = ""
    for _ in range(100):  # pages; the filter normally makes this one page
        page = _kfp_call(host, "list pipeline versions", lambda token=token: client.list_pipeline_versions(
            pipeline_id=pipeline_id, page_token=token, page_size=100, filter=version_filter))
        for version in page.pipeline_versions or []:
            if version.display_name == version_name:
                return version.pipeline_version_id
        token = page.next_page_token or ""
        if not token:
            return None
    return None


def ensure_pipeline_version(client: Any, host: str, package_path: str | Path, pipeline_name: str,
                            namespace: str | None = None) -> tuple[str, str, str, bool]:
    """Create the pipeline if missing and the package's version if missing.

    Returns:
        ``(pipeline_id, version_id, version_name, created_a_version)``.
    """
    package = str(package_path)
    version_name = package_version_name(package_path)
    pipeline_id = _kfp_call(host, "look up the pipeline", lambda: client.get_pipeline_id(pipeline_name))
    if pipeline_id is None:
        pipeline = _kfp_call(host, "upload the pipeline", lambda: client.upload_pipeline(
            package, pipeline_name=pipeline_name, description="videogen: learn how a video moves, generate more",
            namespace=namespace))
        pipeline_id = pipeline.pipeline_id
        logger.info("created pipeline %s (%s)", pipeline_name, pipeline_id)
    else:
        version_id = _find_version(client, host, pipeline_id, version_name)
        if version_id:
            logger.info("pipeline %s version %s is unchanged: reusing it", pipeline_name, version_name)
            return pipeline_id, version_id, version_name, False
    version = _kfp_call(host, "upload the pipeline version", lambda: client.upload_pipeline_version(
        package, pipeline_version_name=version_name, pipeline_id=pipeline_id))
    logger.info("uploaded pipeline %s version %s", pipeline_name, version_name)
    return pipeline_id, version.pipeline_version_id, version_name, True


def submit(host: str, package_path: str | Path, arguments: dict, *, pipeline_name: str | None = None,
           experiment_name: str = "videogen", run_name: str | None = None, existing_token: str | None = None,
           cookies: str | None = None, namespace: str | None = None, ssl_ca_cert: str | None = None,
           wait: bool = False, timeout_s: float = 24 * 3600, poll_interval_s: float = 15.0,
           service_account: str | None = None, client: Any = None) -> SubmitResult:
    """Upload the compiled pipeline (new version only when it changed), start a run in the experiment, maybe wait.

    Args:
        host: KFP API URL, e.g. ``http://localhost:8080/pipeline`` (a port-forward) or the Kubeflow gateway URL.
        package_path: compiled pipeline YAML.
        arguments: pipeline parameters of the run.
        pipeline_name: pipeline name in KFP (default: the YAML's ``pipelineInfo.name``).
        experiment_name: experiment of the run (created if missing).
        run_name: display name of the run (default: pipeline name and a timestamp).
        existing_token, cookies, namespace, ssl_ca_cert: ``kfp.Client`` options for multi-user installs.
        wait: wait for the run to finish; a run that does not succeed raises.
        timeout_s: with ``wait``: how long to wait.
        service_account: Kubernetes service account of the run's pods (default: KFP's own).
        client: an existing ``kfp.Client`` (default: one made from the options above).

    Raises:
        VideogenError: KFP unreachable or refusing, or (with ``wait``) the run failed or did not finish in time.
    """
    package_path = Path(package_path)
    if not package_path.is_file():
        raise VideogenError(f"compiled pipeline {package_path} does not exist: run `videogen compile` first")
    pipeline_name = pipeline_name or pipeline_name_of(package_path)
    arguments = dict(arguments)
    client = client or make_kfp_client(host, existing_token=existing_token, cookies=cookies, namespace=namespace,
                                       ssl_ca_cert=ssl_ca_cert)
    pipeline_id, version_id, version_name, new_version = ensure_pipeline_version(
        client, host, package_path, pipeline_name, namespace)
    experiment = _kfp_call(host, "create the experiment", lambda: client.create_experiment(
        name=experiment_name, namespace=namespace))
    run_name = run_name or f"{pipeline_name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    run = _kfp_call(host, "create the run", lambda: client.run_pipeline(
        experiment_id=experiment.experiment_id, job_name=run_name, params=dict(arguments), pipeline_id=pipeline_id,
        version_id=version_id, service_account=service_account or None))
    result = SubmitResult(run_id=run.run_id, pipeline_id=pipeline_id, version_id=version_id,
                          url=run_url(host, run.run_id), version_name=version_name, new_version=new_version)
    logger.info("started run %s (%s): %s", run.run_id, run_name, result.url)
    if not wait:
        return result
    state = wait_for_run(client, host, result.run_id, timeout_s=timeout_s, poll_interval_s=poll_interval_s)
    return SubmitResult(**{**result.__dict__, "state": state})


def wait_for_run(client: Any, host: str, run_id: str, *, timeout_s: float, poll_interval_s: float = 15.0) -> str:
    """Wait until the run finishes; return ``SUCCEEDED`` or raise a VideogenError naming the state and the run page."""
    url = run_url(host, run_id)
    try:
        run = _kfp_call(host, "get the run", lambda: client.wait_for_run_completion(
            run_id, timeout=timeout_s, sleep_duration=poll_interval_s))
    except TimeoutError:
        raise VideogenError(f"run {run_id} did not finish within {timeout_s:.0f} s: it goes on; watch it at {url} "
                            f"and fetch the video later with `videogen fetch --run-id {run_id}`") from None
    state = str(getattr(run.state, "value", run.state) or "").upper()
    if state != SUCCEEDED:
        raise VideogenError(f"run {run_id} ended {state or 'in an unknown state'}: see its logs at {url}")
    logger.info("run %s succeeded", run_id)
    return state


RESULT_OUTPUTS = {runs.VIDEO_NAME: "video", REPORT_FILE: "report", SUMMARY_FILE: "summary"}
"""File name of each result -> the output artifact that holds it (encode's ``video``, evaluate's ``report`` and
``summary``; no other task has outputs of those names)."""
_NO_ARTIFACT_API = (404, 405, 501)
"""What a KFP backend without the v2beta1 ArtifactService answers ``GET /apis/v2beta1/artifacts/{id}`` with."""


class ArtifactAPI:
    """A run's result files through KFP's v2beta1 API, with the ``kfp.Client``'s host and auth (token, cookies).

    ``GET /apis/v2beta1/runs/{run_id}`` lists the run's tasks (``run_details.task_details[]``), each with
    ``outputs``: ``{output name: {artifact_ids: [...]}}``; ``GET /apis/v2beta1/artifacts/{artifact_id}?view=DOWNLOAD``
    (the ArtifactService, ``backend/api/v2beta1/artifacts.proto``) returns the Artifact with ``download_url``, a signed
    URL that expires within seconds, so each one is asked for right before its download.
    """

    def __init__(self, client: Any, host: str, run_id: str) -> None:
        self.client = client
        self.host = host.rstrip("/")
        self.run_id = run_id
        self.available = True
        run = _kfp_call(host, "get the run", lambda: client.get_run(run_id))
        tasks = (getattr(run.run_details, "task_details", None) or []) if run.run_details else []
        self.artifact_ids: dict[str, str] = {}
        for task in tasks:
            for name, artifacts in (task.outputs or {}).items():
                if artifacts is not None and artifacts.artifact_ids:
                    self.artifact_ids[name] = artifacts.artifact_ids[-1]

    @property
    def _api(self) -> Any:
        return self.client._run_api.api_client  # kfp_server_api.ApiClient: host, token (refreshed), cookies, TLS

    def download_url(self, output: str) -> str | None:
        """The signed download URL of the run's ``output`` artifact; None when the run has no such artifact or the
        API has no artifact service (then ``available`` turns False)."""
        import kfp_server_api

        artifact_id = self.artifact_ids.get(output)
        if not self.available or not artifact_id:
            return None

        def call():
            try:
                return self._api.call_api(
                    "/apis/v2beta1/artifacts/{artifact_id}", "GET", path_params={"artifact_id": artifact_id},
                    query_params=[("view", "DOWNLOAD")], header_params={"Accept": "application/json"},
                    response_type="object", auth_settings=["Bearer"], _return_http_data_only=True)
            except kfp_server_api.ApiException as error:
                if error.status in _NO_ARTIFACT_API:
                    return None
                raise

        artifact = _kfp_call(self.host, "get an artifact", call)
        if artifact is None:
            logger.info("Kubeflow Pipelines at %s has no artifact API: reading the object store instead", self.host)
            self.available = False
            return None
        return (artifact or {}).get("download_url") or None

    def download(self, output: str, dest: Path) -> Path | None:
        """Download the run's ``output`` artifact to ``dest``; None when the API cannot serve it."""
        url = self.download_url(output)
        if not url:
            return None
        url = urllib.parse.urljoin(self.host + "/", url)
        if _origin(url) != _origin(self.host):  # signed by the store: it needs, and must get, none of our credentials
            return storage.fetch(url, dest)
        return self._download_with_auth(url, dest)

    def _download_with_auth(self, url: str, dest: Path) -> Path:
        """A download URL on the KFP host itself (e.g. behind the Kubeflow gateway) gets the client's token/cookie."""
        path = url[len(_origin(url)):]
        response = _kfp_call(self.host, "download an artifact", lambda: self._api.call_api(
            path, "GET", auth_settings=["Bearer"], _return_http_data_only=True, _preload_content=False,
            _host=_origin(url)))
        tmp = storage._temp_beside(dest)  # same rules as every download: complete, then renamed into place
        try:
            with open(tmp, "wb") as f:
                for chunk in response.stream(storage.MiB):
                    f.write(chunk)
            os.replace(tmp, dest)
        finally:
            response.release_conn()
            tmp.unlink(missing_ok=True)
        return dest


def _origin(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return f"{split.scheme.lower()}://{split.netloc.lower()}"


def artifact_api(client: Any, host: str | None, run_id: str) -> ArtifactAPI | None:
    """The run's :class:`ArtifactAPI`, or None (with a warning) when KFP cannot be asked: the object store then."""
    if client is None or not host:
        return None
    try:
        return ArtifactAPI(client, host, run_id)
    except VideogenError as error:
        logger.warning("%s: reading the object store instead", error)
        return None


def fetch_result(run_id: str, output: str | Path, output_root: str, *, report: bool = False,
                 client: storage.StorageClient | None = None, config: storage.StorageConfig | None = None,
                 kfp_client: Any = None, host: str | None = None) -> Path:
    """Download a run's video (and with ``report``, ``report.html``/``summary.md`` beside it).

    With ``kfp_client`` and ``host``, each file comes through KFP's artifact API (the run's output artifacts, signed
    download URLs): no object-store credentials or port-forward needed. Where that API is missing (HTTP 404/501), the
    run has no such artifact, or the signed download fails, the file is read from where the run published it,
    ``{output_root}/{run id}/``, with the object-store credentials of ``client``/``config`` (default: the env).

    Raises:
        StorageError: nothing published for that run id (still running, failed, or another output root), or the
            object store failed.
    """
    output = Path(output)
    api = artifact_api(kfp_client, host, run_id)
    stores: list[storage.StorageClient] = [client] if client is not None else []

    def fetch(name: str, dest: Path) -> Path:
        if api is not None:
            try:
                path = api.download(RESULT_OUTPUTS[name], dest)
            except (StorageError, VideogenError) as error:
                logger.warning("run %s: the artifact API's download of %s failed (%s): reading the object store "
                               "instead", run_id, name, error)
                path = None
            if path is not None:
                logger.info("run %s: %s downloaded through the artifact API", run_id, name)
                return path
        uri = runs.publish_uri(output_root, run_id, name)
        if storage.is_remote(uri) and not stores:
            stores.append(storage.make_client(config))
        return storage.fetch(uri, dest, client=stores[0] if stores else None)

    try:
        path = fetch(runs.VIDEO_NAME, output)
    except storage.ObjectNotFoundError:
        raise StorageError(f"run {run_id} has published no video at {runs.publish_uri(output_root, run_id)}: it may "
                           f"still be running, have failed, or have used another --output-root") from None
    if report:
        for name in (REPORT_FILE, SUMMARY_FILE):
            try:
                fetch(name, path.parent / name)
            except storage.ObjectNotFoundError:
                logger.warning("run %s published no %s", run_id, name)
    return path


def run_clips(run_id: str, output_root: str, *, client: storage.StorageClient | None = None,
              config: storage.StorageConfig | None = None) -> list[str]:
    """The clips of a per-video run (``per_video_models``): the folders below ``{output_root}/{run id}/`` that hold a
    published video, sorted by name (the order a prefix of clips lists them in). Empty for a one-model run."""
    names = storage.list_dir(storage.join_uri(output_root, run_id), client=client, config=config)
    return sorted({name.split("/")[0] for name in names if name.count("/") == 1
                   and name.endswith(f"/{runs.VIDEO_NAME}")})


def fetch_clips(run_id: str, output: str | Path, output_root: str, clips: list[str] | None = None, *,
                report: bool = False, client: storage.StorageClient | None = None,
                config: storage.StorageConfig | None = None) -> list[Path]:
    """Download the videos of a per-video run's ``clips`` (default: all of them), named as ``videogen run`` names them
    locally: the first (by name) at ``output``, every other beside it as ``<output stem>-<clip>.mp4``; with
    ``report``, each clip's report files beside its video (``report.html``, ``summary.md`` for the first;
    ``<output stem>-<clip>.report.html`` ... for the others). Read from the object store: KFP's artifact API serves a
    run's one result, the first clip's.

    Raises:
        StorageError: the run published no clip (a one-model run, or another --output-root), a named clip is not
            among its clips, or the object store failed.
    """
    found = run_clips(run_id, output_root, client=client, config=config)
    if not found:
        raise StorageError(f"run {run_id} has published no clip folders under "
                           f"{storage.join_uri(output_root, run_id)}: fetch without --clip/--all for a one-model run, "
                           f"or check --output-root")
    missing = [clip for clip in clips or [] if clip not in found]
    if missing:
        raise StorageError(f"run {run_id} has no clip {', '.join(missing)}; its clips: {', '.join(found)}")
    wanted = clips or found
    paths = []
    for number, clip in enumerate(wanted):
        first = number == 0
        dest = Path(output) if first else Path(runs.clip_output(str(output), clip))
        paths.append(fetch_result(f"{run_id}/{clip}", dest, output_root, report=report and first, client=client,
                                  config=config))
        for name in (REPORT_FILE, SUMMARY_FILE) if report and not first else ():
            try:
                storage.fetch(runs.publish_uri(output_root, f"{run_id}/{clip}", name),
                              runs.clip_output(str(output), clip, name), client=client, config=config)
            except storage.ObjectNotFoundError:
                logger.warning("run %s: clip %s published no %s", run_id, clip, name)
    return paths
